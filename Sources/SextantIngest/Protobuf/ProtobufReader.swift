/// Reads the protobuf binary wire format field by field, over borrowed bytes.
///
/// The decoders use it to read the fields the model needs straight from a request body, without
/// building SwiftProtobuf messages (a `String` and a `Data` per field, a dictionary per map).
/// It accepts what SwiftProtobuf's `BinaryDecoder` accepts: a known field that arrives with
/// another wire type is skipped as an unknown field, groups are skipped to their end tag, and a
/// message may nest at most `maxDepth` deep (SwiftProtobuf's default `messageDepthLimit`).
/// Spec: https://protobuf.dev/programming-guides/encoding/
struct ProtobufReader {
    enum WireType: UInt8 {
        case varint = 0
        case fixed64 = 1
        case lengthDelimited = 2
        case startGroup = 3
        case endGroup = 4
        case fixed32 = 5
    }

    /// A field's tag.
    struct Field {
        var number: Int
        var wireType: WireType
    }

    /// Why the bytes are not a protobuf message, and where (a byte offset into the whole body).
    struct WireError: Error, CustomStringConvertible {
        var message: String
        var offset: Int

        var description: String { "\(message) at byte \(offset)" }
    }

    /// How deep messages (and groups) may nest, counting the outermost message as 1.
    static let maxDepth = 100

    /// The start of the whole body, so that offsets in errors are the body's.
    private let origin: UnsafeRawPointer
    private var position: Int
    private let end: Int
    /// How deep this reader's message is (the outermost is 1).
    let depth: Int

    /// A reader of the whole body, the outermost message.
    init(_ bytes: UnsafeRawBufferPointer) {
        // An empty buffer may have no base address; any non-null pointer will do as nothing is read.
        origin = bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        position = 0
        end = bytes.count
        depth = 1
    }

    private init(origin: UnsafeRawPointer, position: Int, end: Int, depth: Int) {
        self.origin = origin
        self.position = position
        self.end = end
        self.depth = depth
    }

    var isAtEnd: Bool { position >= end }

    /// The byte offset of the next read in the whole body.
    var offset: Int { position }

    func fail(_ message: String, at offset: Int? = nil) -> WireError {
        WireError(message: message, offset: offset ?? position)
    }

    // MARK: - Tags

    /// The next field's tag; nil at the end of the message.
    ///
    /// - Throws: for a field number 0 or past 2^29 - 1, wire types 6 and 7, and an end-group tag
    ///   that closes no group.
    @inline(__always)
    mutating func next() throws(WireError) -> Field? {
        guard position < end else { return nil }
        let start = position
        let tag = try varint()
        guard tag < UInt64(UInt32.max), position - start <= 5, let wireType = WireType(rawValue: UInt8(tag & 7)) else {
            throw fail("invalid field tag", at: start)
        }
        let number = Int(tag >> 3)
        guard number > 0 else { throw fail("field number 0", at: start) }
        guard wireType != .endGroup else { throw fail("end-group tag outside a group", at: start) }
        return Field(number: number, wireType: wireType)
    }

    // MARK: - Values

    @inline(__always)
    mutating func varint() throws(WireError) -> UInt64 {
        guard position < end else { throw fail("truncated varint") }
        let first = origin.load(fromByteOffset: position, as: UInt8.self)
        if first < 0x80 {
            position += 1
            return UInt64(first)
        }
        let start = position
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else { throw fail("truncated varint", at: start) }
            guard shift <= 63 else { throw fail("varint longer than 10 bytes", at: start) }
            let byte = origin.load(fromByteOffset: position, as: UInt8.self)
            position += 1
            value |= UInt64(byte & 0x7F) &<< shift
            if byte < 0x80 { return value }
            shift += 7
        }
    }

    mutating func fixed64() throws(WireError) -> UInt64 {
        guard end - position >= 8 else { throw fail("truncated fixed64") }
        defer { position += 8 }
        return UInt64(littleEndian: origin.loadUnaligned(fromByteOffset: position, as: UInt64.self))
    }

    mutating func fixed32() throws(WireError) -> UInt32 {
        guard end - position >= 4 else { throw fail("truncated fixed32") }
        defer { position += 4 }
        return UInt32(littleEndian: origin.loadUnaligned(fromByteOffset: position, as: UInt32.self))
    }

    /// A varint field as a proto3 `bool`.
    mutating func bool() throws(WireError) -> Bool { try varint() != 0 }

    /// A varint field as an `int32` or enum (truncated, as protobuf does).
    mutating func int32() throws(WireError) -> Int32 { Int32(truncatingIfNeeded: try varint()) }

    /// The payload of a length-delimited field.
    @inline(__always)
    mutating func bytes() throws(WireError) -> UnsafeRawBufferPointer {
        let start = position
        let length = try varint()
        // Strings, bytes and messages are limited to 2 GiB, as in SwiftProtobuf and protobuf C++.
        guard length < 0x7FFF_FFFF else { throw fail("length \(length) is over 2 GiB", at: start) }
        guard Int(length) <= end - position else {
            throw fail("length \(length) runs past the end of its message", at: start)
        }
        defer { position += Int(length) }
        return UnsafeRawBufferPointer(start: origin + position, count: Int(length))
    }

    /// The payload of a length-delimited `string` field, checked to be UTF-8 (as SwiftProtobuf does).
    @inline(__always)
    mutating func string() throws(WireError) -> UnsafeRawBufferPointer {
        let start = position
        let text = try bytes()
        guard Self.isUTF8(text) else { throw fail("string is not valid UTF-8", at: start) }
        return text
    }

    /// A reader of the embedded message in a length-delimited field.
    mutating func message() throws(WireError) -> ProtobufReader {
        let start = position
        let body = try bytes()
        guard depth < Self.maxDepth else {
            throw fail("messages nest deeper than \(Self.maxDepth)", at: start)
        }
        let from = origin.distance(to: body.baseAddress ?? origin + position)
        return ProtobufReader(origin: origin, position: from, end: from + body.count, depth: depth + 1)
    }

    /// Skips the value of a field the caller does not read.
    mutating func skip(_ field: Field) throws(WireError) {
        try skip(field, groupDepth: depth)
    }

    private mutating func skip(_ field: Field, groupDepth: Int) throws(WireError) {
        switch field.wireType {
        case .varint: _ = try varint()
        case .fixed64: _ = try fixed64()
        case .fixed32: _ = try fixed32()
        case .lengthDelimited: _ = try bytes()
        case .endGroup: throw fail("unexpected end-group tag")
        case .startGroup:
            guard groupDepth < Self.maxDepth else { throw fail("groups nest deeper than \(Self.maxDepth)") }
            while true {
                guard position < end else { throw fail("group \(field.number) has no end tag") }
                let start = position
                let tag = try varint()
                guard tag < UInt64(UInt32.max), let wireType = WireType(rawValue: UInt8(tag & 7)), tag >> 3 > 0 else {
                    throw fail("invalid field tag", at: start)
                }
                let inner = Field(number: Int(tag >> 3), wireType: wireType)
                if wireType == .endGroup {
                    guard inner.number == field.number else {
                        throw fail("end-group tag \(inner.number) closes group \(field.number)", at: start)
                    }
                    return
                }
                try skip(inner, groupDepth: groupDepth + 1)
            }
        }
    }

    // MARK: - UTF-8

    /// Whether the bytes are well-formed UTF-8 (ASCII checked 8 bytes at a time).
    @inline(__always)
    static func isUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        let count = bytes.count
        while i + 8 <= count {
            if bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 {
                return validUTF8(bytes)
            }
            i += 8
        }
        while i < count {
            if bytes[i] >= 0x80 { return validUTF8(bytes) }
            i += 1
        }
        return true
    }

    private static func validUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }
}
