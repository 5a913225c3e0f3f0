package import SextantModel

/// One decoder as a fuzz target: arbitrary bytes in, through the same calls the receiver makes.
///
/// A target must never crash, hang or exhaust memory; any input ends as decoded records, rejected
/// records, or a `DecodeError`. `sextant-fuzz` runs a target under libFuzzer or replays files
/// through it; `SextantFuzzTests` replays the committed corpus and every past finding.
package struct FuzzTarget: Sendable {
    /// What one input came to.
    package enum Outcome: Sendable, CustomStringConvertible {
        /// Decoded: records kept and records rejected one by one.
        case decoded(records: Int, rejected: Int)
        /// A body decoded from its content encoding, of this many bytes.
        case inflated(bytes: Int)
        /// Refused as a whole, as the receiver would answer it (a 4xx or INVALID_ARGUMENT).
        case refused(DecodeError)

        package var description: String {
            switch self {
            case .decoded(let records, let rejected): "decoded \(records) records, rejected \(rejected)"
            case .inflated(let bytes): "inflated to \(bytes) bytes"
            case .refused(let error): "refused (\(error.code)): \(error.message.prefix(200))"
            }
        }
    }

    /// The name used on the command line, in `SEXTANT_FUZZ_TARGET` and as the corpus folder.
    package let name: String
    /// The receiver path the target exercises.
    package let summary: String
    /// Whether inputs are protobuf messages, which `ProtobufWireMutator` can mutate field by field.
    package let isProtobuf: Bool
    private let body: @Sendable ([UInt8]) -> Outcome

    init(
        _ name: String, _ summary: String, protobuf: Bool = false,
        _ body: @escaping @Sendable ([UInt8]) throws(DecodeError) -> Outcome
    ) {
        self.name = name
        self.summary = summary
        self.isProtobuf = protobuf
        self.body = { input in
            do throws(DecodeError) {
                return try body(input)
            } catch {
                return .refused(error)
            }
        }
    }

    /// Feeds one input to the decoder.
    package func run(_ input: [UInt8]) -> Outcome {
        body(input)
    }

    /// The target of that name.
    package static func named(_ name: String) -> FuzzTarget? {
        all.first { $0.name == name }
    }
}
