using Google.Protobuf;
using Sharerpc.Agent.V1;
using ShareRpc.Client;

namespace ShareRpc.AgentSession;

/// <summary>
/// Writes an agent session's records to a share through a durable <see cref="ShareWriter"/>,
/// mapped as <see cref="AgentSessionProfile"/> says. Every call returns once the op is durable
/// in the outbox (its <see cref="PendingOp.Acked"/> completes with the server's ack). Upserts
/// are last-writer-wins: one writer's ops apply in the order they were made.
/// </summary>
public sealed class AgentSessionWriter
{
    /// <param name="writer">The share's durable writer (<see cref="ShareRpcClient.OpenWriter"/>).</param>
    /// <param name="maxValueBytes">
    /// Largest serialized record accepted; a larger one throws here instead of reaching the
    /// outbox (the server refuses values above its MaxValueBytes, default 1 MiB).
    /// </param>
    /// <param name="maxKeyLength">Longest document key accepted (the server's MaxKeyLength, default 512).</param>
    public AgentSessionWriter(ShareWriter writer, int maxValueBytes = 1024 * 1024, int maxKeyLength = 512)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxValueBytes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxKeyLength);
        Writer = writer;
        MaxValueBytes = maxValueBytes;
        MaxKeyLength = maxKeyLength;
    }

    public ShareWriter Writer { get; }

    public int MaxValueBytes { get; }

    public int MaxKeyLength { get; }

    /// <summary>Puts the session record: collection <c>session</c>, key <c>info</c>.</summary>
    public Task<PendingOp> UpsertSessionAsync(Session session)
    {
        ArgumentNullException.ThrowIfNull(session);
        return PutAsync(AgentSessionProfile.SessionCollection, AgentSessionProfile.SessionKey, session, AgentSessionProfile.SessionContentType);
    }

    /// <summary>Puts a message: collection <c>messages</c>, key = its id.</summary>
    public Task<PendingOp> UpsertMessageAsync(Message message)
    {
        ArgumentNullException.ThrowIfNull(message);
        return PutAsync(AgentSessionProfile.MessagesCollection, AgentSessionProfile.MessageKey(message.Id), message, AgentSessionProfile.MessageContentType);
    }

    /// <summary>Deletes a message document (its parts are separate documents: delete them with <see cref="DeletePartAsync"/>).</summary>
    public Task<PendingOp> DeleteMessageAsync(string messageId) =>
        DeleteAsync(AgentSessionProfile.MessagesCollection, AgentSessionProfile.MessageKey(messageId));

    /// <summary>Puts a part: collection <c>parts</c>, key <c>{message_id}/{id}</c>.</summary>
    public Task<PendingOp> UpsertPartAsync(Part part)
    {
        ArgumentNullException.ThrowIfNull(part);
        return PutAsync(AgentSessionProfile.PartsCollection, AgentSessionProfile.PartKey(part.MessageId, part.Id), part, AgentSessionProfile.PartContentType);
    }

    public Task<PendingOp> DeletePartAsync(string messageId, string partId) =>
        DeleteAsync(AgentSessionProfile.PartsCollection, AgentSessionProfile.PartKey(messageId, partId));

    /// <summary>Appends a diff to collection <c>diffs</c>; the server keys it by the cursor it lands at.</summary>
    public Task<PendingOp> AppendDiffAsync(FileDiff diff)
    {
        ArgumentNullException.ThrowIfNull(diff);
        return Writer.AppendAsync(AgentSessionProfile.DiffsCollection, Serialize(diff), AgentSessionProfile.FileDiffContentType);
    }

    /// <summary>Replaces the model list: collection <c>models</c>, key <c>list</c>.</summary>
    public Task<PendingOp> SetModelsAsync(IEnumerable<Model> models, ModelRef? defaultModel = null)
    {
        ArgumentNullException.ThrowIfNull(models);
        var list = new ModelList { DefaultModel = defaultModel };
        list.Models.AddRange(models);
        return SetModelsAsync(list);
    }

    public Task<PendingOp> SetModelsAsync(ModelList models)
    {
        ArgumentNullException.ThrowIfNull(models);
        return PutAsync(AgentSessionProfile.ModelsCollection, AgentSessionProfile.ModelsKey, models, AgentSessionProfile.ModelListContentType);
    }

    /// <summary>Waits until every op of this share in the outbox is acked or rejected.</summary>
    public Task FlushAsync(CancellationToken cancellationToken = default) => Writer.FlushAsync(cancellationToken);

    private Task<PendingOp> PutAsync(string collection, string key, IMessage record, string contentType)
    {
        CheckKey(key);
        return Writer.PutAsync(collection, key, Serialize(record), contentType);
    }

    private Task<PendingOp> DeleteAsync(string collection, string key)
    {
        CheckKey(key);
        return Writer.DeleteAsync(collection, key);
    }

    private void CheckKey(string key)
    {
        if (key.Length > MaxKeyLength)
        {
            throw new ArgumentException($"The document key is {key.Length} chars; at most {MaxKeyLength} are accepted.", nameof(key));
        }
    }

    private byte[] Serialize(IMessage record)
    {
        var size = record.CalculateSize();
        if (size > MaxValueBytes)
        {
            throw new ArgumentException(
                $"The {record.Descriptor.Name} record is {size} bytes; at most {MaxValueBytes} are accepted (server MaxValueBytes). For a large file diff, send only the patch.",
                nameof(record));
        }

        return record.ToByteArray();
    }
}
