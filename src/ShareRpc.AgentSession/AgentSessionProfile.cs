using Google.Protobuf.Reflection;
using Sharerpc.Agent.V1;

namespace ShareRpc.AgentSession;

/// <summary>
/// How the agent-session records map to ShareRpc documents (docs/agent-session.md):
/// <list type="table">
/// <item><term><see cref="Session"/></term><description>collection <c>session</c>, key <c>info</c> (Put)</description></item>
/// <item><term><see cref="Message"/></term><description>collection <c>messages</c>, key = message id (Put)</description></item>
/// <item><term><see cref="Part"/></term><description>collection <c>parts</c>, key = <c>{messageId}/{partId}</c> (Put), so the parts of one message sort together</description></item>
/// <item><term><see cref="FileDiff"/></term><description>collection <c>diffs</c>, Append: the server's key is the cursor (decimal)</description></item>
/// <item><term><see cref="ModelList"/></term><description>collection <c>models</c>, key <c>list</c> (Put, replaced whole)</description></item>
/// </list>
/// Values are the serialized messages with content type
/// <c>application/x-protobuf; type=sharerpc.agent.v1.&lt;Message&gt;</c>.
/// </summary>
public static class AgentSessionProfile
{
    public const string SessionCollection = "session";
    public const string SessionKey = "info";
    public const string MessagesCollection = "messages";
    public const string PartsCollection = "parts";
    public const string DiffsCollection = "diffs";
    public const string ModelsCollection = "models";
    public const string ModelsKey = "list";

    /// <summary>Separates the message id from the part id in a part's key.</summary>
    public const char PartKeySeparator = '/';

    public static readonly string SessionContentType = ContentTypeOf(Session.Descriptor);
    public static readonly string MessageContentType = ContentTypeOf(Message.Descriptor);
    public static readonly string PartContentType = ContentTypeOf(Part.Descriptor);
    public static readonly string FileDiffContentType = ContentTypeOf(FileDiff.Descriptor);
    public static readonly string ModelListContentType = ContentTypeOf(ModelList.Descriptor);

    /// <summary><c>application/x-protobuf; type=FULL_NAME</c>.</summary>
    public static string ContentTypeOf(MessageDescriptor descriptor) => "application/x-protobuf; type=" + descriptor.FullName;

    /// <summary>The key of a message document: its id (not empty, no '/', no control characters).</summary>
    public static string MessageKey(string messageId)
    {
        CheckId(messageId, nameof(messageId), allowSeparator: false);
        return messageId;
    }

    /// <summary>The key of a part document: <c>{messageId}/{partId}</c>.</summary>
    public static string PartKey(string messageId, string partId)
    {
        CheckId(messageId, nameof(messageId), allowSeparator: false);
        CheckId(partId, nameof(partId), allowSeparator: true);
        return messageId + PartKeySeparator + partId;
    }

    /// <summary>Splits a part key into message id and part id (at the first '/'); false if it is not one.</summary>
    public static bool TryParsePartKey(string key, out string messageId, out string partId)
    {
        var at = key.IndexOf(PartKeySeparator, StringComparison.Ordinal);
        if (at <= 0 || at == key.Length - 1)
        {
            messageId = partId = "";
            return false;
        }

        messageId = key[..at];
        partId = key[(at + 1)..];
        return true;
    }

    private static void CheckId(string id, string name, bool allowSeparator)
    {
        ArgumentException.ThrowIfNullOrEmpty(id, name);
        if (!allowSeparator && id.Contains(PartKeySeparator, StringComparison.Ordinal))
        {
            throw new ArgumentException($"A message id must not contain '{PartKeySeparator}' (it separates message and part ids in part keys): '{id}'.", name);
        }

        if (id.Any(char.IsControl))
        {
            throw new ArgumentException("An id must not contain control characters.", name);
        }
    }
}
