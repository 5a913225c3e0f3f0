import GRPCCore

/// Hands a handler the request message's bytes as received, for a decoder that reads the protobuf
/// wire format itself (`OTLPTraceDecoder`, `EnvoyALSDecoder`) instead of a SwiftProtobuf message.
struct RawMessageDeserializer: MessageDeserializer {
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}

/// Sends a request message's bytes as they are (an export request already serialized).
struct RawMessageSerializer: MessageSerializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
}
