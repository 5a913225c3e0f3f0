import Logging
import Testing

@testable import SextantServer

/// The memory guard's reservations, on this process's own resident size.
@Suite struct MemoryGuardTests {
    private static let logger = Logger(label: "test")

    @Test func readsTheResidentSizeWithoutFileBackedPages() throws {
        let resident = try #require(MemoryGuard.readResidentBytes())
        #expect(resident > 1 << 20)
        #expect(MemoryGuard(limitBytes: 1 << 40, logger: Self.logger).residentBytes.now > 0)
    }

    @Test func admitsWhatFitsUnderTheThresholdAndRefusesTheRest() async throws {
        let resident = try #require(MemoryGuard.readResidentBytes())
        // The threshold (80 % of the limit) sits 100 MiB above the resident size.
        let limit = Int(Double(resident + (100 << 20)) / MemoryGuard.sheddingFraction)
        let guardian = MemoryGuard(limitBytes: limit, logger: Self.logger)
        #expect(try await guardian.reserving(10 << 20) { 7 } == 7)
        await #expect(throws: MemoryGuard.Refusal.self) {
            try await guardian.reserving(200 << 20) { () }
        }
        // Reservations held at once add up; each is released once its work is done.
        try await guardian.reserving(60 << 20) {
            await #expect(throws: MemoryGuard.Refusal.self) {
                try await guardian.reserving(60 << 20) { () }
            }
            try guardian.check()
        }
        try await guardian.reserving(60 << 20) { () }
        // Released after a failure too.
        await #expect(throws: CancellationError.self) {
            try await guardian.reserving(60 << 20) { throw CancellationError() }
        }
        try await guardian.reserving(60 << 20) { () }
    }

    @Test func noLimitAdmitsEverything() async throws {
        let guardian = MemoryGuard(limitBytes: 0, logger: Self.logger)
        try await guardian.reserving(1 << 40) { () }
        try guardian.check()
    }
}
