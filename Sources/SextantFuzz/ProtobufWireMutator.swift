import SextantModel

/// Mutates protobuf messages at the wire level, so that a mutation keeps the message readable.
///
/// A byte-level mutator rarely gets past a protobuf decoder: a changed varint shifts every
/// length prefix around it. This one reads the input as a tree of fields (a length-delimited field
/// that parses as a message is a message), changes one value, repeats or drops a field, and writes
/// the tree back with correct lengths. Values are drawn from the edges decoders get wrong:
/// `Int64.max`, `UInt64.max`, 2⁵³, infinities, NaN. It needs no schema.
/// Encoding: https://protobuf.dev/programming-guides/encoding/
package struct ProtobufWireMutator {
    package indirect enum Value: Equatable {
        case varint(UInt64)
        case fixed64(UInt64)
        case fixed32(UInt32)
        case bytes([UInt8])
        case message([Field])
    }

    package struct Field: Equatable {
        package var number: UInt64
        package var value: Value
    }

    /// Mutates raw bytes the way libFuzzer's own mutator does (`LLVMFuzzerMutate`), in place.
    package typealias ByteMutator = (inout [UInt8], _ maxSize: Int) -> Void

    private var random: SplitMix64
    private let mutateBytes: ByteMutator

    package init(seed: UInt64, mutateBytes: @escaping ByteMutator) {
        random = SplitMix64(seed: seed)
        self.mutateBytes = mutateBytes
    }

    /// A mutation of `input` no longer than `maxSize`; nil when `input` is not a protobuf message.
    package mutating func mutate(_ input: [UInt8], maxSize: Int) -> [UInt8]? {
        guard var fields = Self.parse(input[...], depth: 0), !fields.isEmpty else { return nil }
        mutate(&fields, depth: 0)
        let output = Self.serialize(fields)
        return output.count <= maxSize ? output : nil
    }

    private mutating func mutate(_ fields: inout [Field], depth: Int) {
        let index = Int.random(in: 0..<fields.count, using: &random)
        switch UInt8.random(in: 0..<16, using: &random) {
        case 0 where fields.count > 1:
            fields.remove(at: index)
            return
        case 1:
            // Repeated fields and last-one-wins scalars both get exercised.
            fields.insert(fields[index], at: Int.random(in: 0...fields.count, using: &random))
            return
        default:
            break
        }
        switch fields[index].value {
        case .message(var children) where !children.isEmpty && depth < 64:
            mutate(&children, depth: depth + 1)
            fields[index].value = .message(children)
        case .message:
            fields[index].value = .varint(edgeInteger(0))
        case .varint(let v):
            fields[index].value = .varint(edgeInteger(v))
        case .fixed64(let v):
            let double = Bool.random(using: &random)
            fields[index].value = .fixed64(double ? edgeDouble().bitPattern : edgeInteger(v))
        case .fixed32(let v):
            let float = Bool.random(using: &random)
            fields[index].value = .fixed32(
                float ? edgeFloat().bitPattern : UInt32(truncatingIfNeeded: edgeInteger(UInt64(v))))
        case .bytes(var bytes):
            if let packed = Self.packedVarints(bytes), !packed.isEmpty, Bool.random(using: &random) {
                var values = packed
                let k = Int.random(in: 0..<values.count, using: &random)
                values[k] = edgeInteger(values[k])
                bytes = values.flatMap(Self.varint)
            } else {
                mutateBytes(&bytes, bytes.count * 2 + 16)
            }
            fields[index].value = .bytes(bytes)
        }
    }

    private mutating func edgeInteger(_ current: UInt64) -> UInt64 {
        let edges: [UInt64] = [
            0, 1, UInt64.max, UInt64(Int64.max), UInt64(bitPattern: Int64.min), UInt64(UInt32.max),
            UInt64(Int32.max), UInt64(bitPattern: Int64(Int32.min)), 1 << 53, 1 << 62, UInt64(Int64.max / 1000),
            UInt64(Int64.max / 1_000_000), current &+ 1, current &- 1, current &* 1000, current / 2, 0 &- current,
        ]
        guard Bool.random(using: &random) else { return UInt64.random(in: 0...UInt64.max, using: &random) }
        return edges.randomElement(using: &random)!
    }

    private mutating func edgeDouble() -> Double {
        [0, -0.0, 1, -1, .infinity, -.infinity, .nan, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
         .leastNonzeroMagnitude, 9.3e18, -9.3e18, 1e300, 0.5]
            .randomElement(using: &random)!
    }

    private mutating func edgeFloat() -> Float {
        [0, 1, -1, .infinity, -.infinity, .nan, .greatestFiniteMagnitude].randomElement(using: &random)!
    }

    // MARK: - Wire format

    /// The fields of a message; nil unless `bytes` is exactly a sequence of well-formed fields.
    package static func parse(_ bytes: ArraySlice<UInt8>, depth: Int) -> [Field]? {
        var fields: [Field] = []
        var rest = bytes
        while !rest.isEmpty {
            guard let key = readVarint(&rest), key >> 3 > 0 else { return nil }
            let value: Value
            switch key & 7 {
            case 0:
                guard let v = readVarint(&rest) else { return nil }
                value = .varint(v)
            case 1:
                guard rest.count >= 8 else { return nil }
                value = .fixed64(rest.prefix(8).reversed().reduce(0) { $0 << 8 | UInt64($1) })
                rest = rest.dropFirst(8)
            case 2:
                guard let length = readVarint(&rest), length <= rest.count else { return nil }
                let payload = rest.prefix(Int(length))
                rest = rest.dropFirst(Int(length))
                if depth < 64, !payload.isEmpty, let children = parse(payload, depth: depth + 1) {
                    value = .message(children)
                } else {
                    value = .bytes(Array(payload))
                }
            case 5:
                guard rest.count >= 4 else { return nil }
                value = .fixed32(rest.prefix(4).reversed().reduce(0) { $0 << 8 | UInt32($1) })
                rest = rest.dropFirst(4)
            default:
                // Groups (3, 4) are long deprecated and unused by every schema here.
                return nil
            }
            fields.append(Field(number: key >> 3, value: value))
        }
        return fields
    }

    package static func serialize(_ fields: [Field]) -> [UInt8] {
        var out: [UInt8] = []
        for field in fields {
            switch field.value {
            case .varint(let v):
                out += varint(field.number << 3) + varint(v)
            case .fixed64(let v):
                out += varint(field.number << 3 | 1) + (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }
            case .fixed32(let v):
                out += varint(field.number << 3 | 5) + (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }
            case .bytes(let bytes):
                out += varint(field.number << 3 | 2) + varint(UInt64(bytes.count)) + bytes
            case .message(let children):
                let body = serialize(children)
                out += varint(field.number << 3 | 2) + varint(UInt64(body.count)) + body
            }
        }
        return out
    }

    private static func readVarint(_ bytes: inout ArraySlice<UInt8>) -> UInt64? {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 70, by: 7) {
            guard let byte = bytes.popFirst() else { return nil }
            if shift == 63, byte > 1 { return nil }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
        }
        return nil
    }

    private static func varint(_ value: UInt64) -> [UInt8] {
        var v = value
        var out: [UInt8] = []
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
        return out
    }

    /// A packed repeated varint field's values, if the bytes are exactly that.
    private static func packedVarints(_ bytes: [UInt8]) -> [UInt64]? {
        var rest = bytes[...]
        var values: [UInt64] = []
        while !rest.isEmpty {
            guard let v = readVarint(&rest) else { return nil }
            values.append(v)
        }
        return values
    }
}
