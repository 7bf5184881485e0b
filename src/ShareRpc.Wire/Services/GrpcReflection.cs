using Google.Protobuf;
using Google.Protobuf.Reflection;
using ShareRpc.Wire.Health.V1;
using ShareRpc.Wire.Reflection.V1;

namespace ShareRpc.Wire;

/// <summary>
/// grpc.reflection.v1.ServerReflection over the descriptors given (grpc/grpc
/// doc/server-reflection.md), so tools such as <c>buf curl</c> can call without protos.
/// </summary>
public static class GrpcReflection
{
    public const string ServiceName = "grpc.reflection.v1.ServerReflection";

    public static readonly Method<ServerReflectionRequest, ServerReflectionResponse> Info = new(
        MethodType.DuplexStreaming, ServiceName, "ServerReflectionInfo",
        Marshallers.Protobuf(ServerReflectionRequest.Parser), Marshallers.Protobuf(ServerReflectionResponse.Parser));

    /// <summary>
    /// Serves the services declared in <paramref name="files"/> (plus health and reflection);
    /// symbols resolve across those files and their imports.
    /// </summary>
    public static ServerServiceDefinition CreateService(IEnumerable<FileDescriptor> files)
    {
        ArgumentNullException.ThrowIfNull(files);
        var index = new Index(files.Concat(new[] { HealthReflection.Descriptor, ReflectionReflection.Descriptor }));
        return ServerServiceDefinition.CreateBuilder()
            .AddMethod(Info, async (requests, responses, context) =>
            {
                await foreach (var request in requests.ReadAllAsync(context.CancellationToken))
                {
                    await responses.WriteAsync(index.Answer(request));
                }
            })
            .Build();
    }

    private sealed class Index
    {
        private readonly List<string> _services = new();
        private readonly Dictionary<string, FileDescriptor> _byName = new(StringComparer.Ordinal);
        private readonly Dictionary<string, FileDescriptor> _bySymbol = new(StringComparer.Ordinal);

        public Index(IEnumerable<FileDescriptor> roots)
        {
            foreach (var f in roots)
            {
                foreach (var s in f.Services)
                {
                    if (!_services.Contains(s.FullName))
                    {
                        _services.Add(s.FullName);
                    }
                }

                AddFile(f);
            }
        }

        public ServerReflectionResponse Answer(ServerReflectionRequest request)
        {
            var response = new ServerReflectionResponse { ValidHost = request.Host, OriginalRequest = request };
            switch (request.MessageRequestCase)
            {
                case ServerReflectionRequest.MessageRequestOneofCase.ListServices:
                    response.ListServicesResponse = new ListServiceResponse();
                    response.ListServicesResponse.Service.AddRange(_services.Select(n => new ServiceResponse { Name = n }));
                    break;
                case ServerReflectionRequest.MessageRequestOneofCase.FileByFilename:
                    SetFile(response, _byName.GetValueOrDefault(request.FileByFilename), $"File '{request.FileByFilename}' not found.");
                    break;
                case ServerReflectionRequest.MessageRequestOneofCase.FileContainingSymbol:
                    SetFile(response, _bySymbol.GetValueOrDefault(request.FileContainingSymbol.TrimStart('.')), $"Symbol '{request.FileContainingSymbol}' not found.");
                    break;
                case ServerReflectionRequest.MessageRequestOneofCase.AllExtensionNumbersOfType:
                    // Proto3 services here declare no extensions.
                    response.AllExtensionNumbersResponse = new ExtensionNumberResponse { BaseTypeName = request.AllExtensionNumbersOfType };
                    break;
                default:
                    response.ErrorResponse = new ErrorResponse { ErrorCode = (int)StatusCode.NotFound, ErrorMessage = "Extensions are not indexed by this server." };
                    break;
            }

            return response;
        }

        private void SetFile(ServerReflectionResponse response, FileDescriptor? file, string notFound)
        {
            if (file is null)
            {
                response.ErrorResponse = new ErrorResponse { ErrorCode = (int)StatusCode.NotFound, ErrorMessage = notFound };
                return;
            }

            // The file and everything it imports, so the client can build the descriptors at once.
            response.FileDescriptorResponse = new FileDescriptorResponse();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var stack = new Stack<FileDescriptor>();
            stack.Push(file);
            while (stack.Count > 0)
            {
                var f = stack.Pop();
                if (!seen.Add(f.Name))
                {
                    continue;
                }

                response.FileDescriptorResponse.FileDescriptorProto.Add(f.SerializedData);
                foreach (var d in f.Dependencies)
                {
                    stack.Push(d);
                }
            }
        }

        private void AddFile(FileDescriptor file)
        {
            if (!_byName.TryAdd(file.Name, file))
            {
                return;
            }

            foreach (var m in file.MessageTypes)
            {
                AddMessage(m, file);
            }

            foreach (var e in file.EnumTypes)
            {
                _bySymbol[e.FullName] = file;
            }

            foreach (var s in file.Services)
            {
                _bySymbol[s.FullName] = file;
                foreach (var method in s.Methods)
                {
                    _bySymbol[method.FullName] = file;
                }
            }

            foreach (var d in file.Dependencies)
            {
                AddFile(d);
            }
        }

        private void AddMessage(MessageDescriptor message, FileDescriptor file)
        {
            _bySymbol[message.FullName] = file;
            foreach (var nested in message.NestedTypes)
            {
                AddMessage(nested, file);
            }

            foreach (var e in message.EnumTypes)
            {
                _bySymbol[e.FullName] = file;
            }
        }
    }
}
