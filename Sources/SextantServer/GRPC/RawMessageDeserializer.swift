import GRPCCore

/// Hands a handler the request message's bytes as received, for a decoder that reads the protobuf
/// wire format itself (`OTLPTraceDecoder`, `EnvoyALSDecoder`) instead of a SwiftProtobuf message.
struct RawMessageDeserializer: MessageDeserializer {
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}
