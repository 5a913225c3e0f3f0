import Foundation
@testable import SextantServer
import Testing

@Suite struct ServerTLSTests {
    /// PEM files made with the `openssl` command in a fresh temporary directory: a CA, a server
    /// certificate signed by it with its key, a key of no certificate here, and a text file.
    private struct Files {
        let directory: URL
        var ca: String { path("ca.crt") }
        var certificate: String { path("server.crt") }
        var key: String { path("server.key") }
        var strayKey: String { path("stray.key") }
        var text: String { path("notes.txt") }

        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
    }

    private func withFiles(_ body: (Files) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("sextant-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let files = Files(directory: directory)
        let newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try openssl(
            ["req", "-x509", "-new"] + newKey
                + ["-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=test CA"], in: directory)
        try openssl(
            ["req", "-new"] + newKey + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
            in: directory)
        try Data("subjectAltName=DNS:localhost,IP:127.0.0.1\n".utf8)
            .write(to: directory.appendingPathComponent("server.ext"))
        try openssl(
            [
                "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", "7",
                "-days", "1", "-out", "server.crt", "-extfile", "server.ext",
            ], in: directory)
        try openssl(
            ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", "stray.key"],
            in: directory)
        try Data("not a certificate\n".utf8).write(to: directory.appendingPathComponent("notes.txt"))
        try body(files)
    }

    private func openssl(_ arguments: [String], in directory: URL) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        process.currentDirectoryURL = directory
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "openssl \(arguments.joined(separator: " "))")
    }

    private func setupError(_ load: () throws -> ServerTLS) throws -> TLSSetupError {
        do {
            _ = try load()
        } catch let error as TLSSetupError {
            return error
        }
        Issue.record("no error")
        throw CancellationError()
    }

    @Test func loadsACertificateAndItsKey() throws {
        try withFiles { files in
            let tls = try ServerTLS(certificateFile: files.certificate, privateKeyFile: files.key)
            #expect(!tls.requiresClientCertificate)
            // What both listeners are given: the files' own bytes, and a configuration holding one
            // certificate and the key.
            #expect(tls.certificateChainPEM == [UInt8](try Data(contentsOf: URL(fileURLWithPath: files.certificate))))
            #expect(tls.privateKeyPEM == [UInt8](try Data(contentsOf: URL(fileURLWithPath: files.key))))
            #expect(tls.httpConfiguration.certificateChain.count == 1)
            #expect(tls.httpConfiguration.privateKey != nil)
            #expect(tls.httpConfiguration.certificateVerification == .none)
        }
    }

    @Test func requiresClientCertificatesWithAClientCA() throws {
        try withFiles { files in
            let tls = try ServerTLS(
                certificateFile: files.certificate, privateKeyFile: files.key, clientCAFile: files.ca)
            #expect(tls.requiresClientCertificate)
        }
    }

    @Test func namesAMissingFile() throws {
        try withFiles { files in
            let missing = files.path("missing.pem")
            let error = try setupError { try ServerTLS(certificateFile: files.certificate, privateKeyFile: missing) }
            #expect(error.code == .unreadableFile)
            #expect(error.message.contains(missing))
            #expect(error.message.contains("--tls-key-file"))
        }
    }

    @Test func refusesADirectory() throws {
        try withFiles { files in
            let error = try setupError {
                try ServerTLS(certificateFile: files.directory.path, privateKeyFile: files.key)
            }
            #expect(error.code == .unreadableFile)
        }
    }

    @Test func refusesACertificateFileWithoutCertificate() throws {
        try withFiles { files in
            let error = try setupError { try ServerTLS(certificateFile: files.text, privateKeyFile: files.key) }
            #expect(error.code == .invalidCertificate)
            #expect(error.message.contains(files.text))
        }
    }

    @Test func refusesAKeyFileWithoutKey() throws {
        try withFiles { files in
            let error = try setupError { try ServerTLS(certificateFile: files.certificate, privateKeyFile: files.text) }
            #expect(error.code == .invalidPrivateKey)
        }
    }

    @Test func refusesAKeyOfAnotherCertificate() throws {
        try withFiles { files in
            let error = try setupError {
                try ServerTLS(certificateFile: files.certificate, privateKeyFile: files.strayKey)
            }
            #expect(error.code == .keyMismatch)
            #expect(error.message.contains(files.strayKey) && error.message.contains(files.certificate))
        }
    }

    @Test func refusesAClientCAFileWithoutCertificate() throws {
        try withFiles { files in
            let error = try setupError {
                try ServerTLS(certificateFile: files.certificate, privateKeyFile: files.key, clientCAFile: files.text)
            }
            #expect(error.code == .invalidClientCA)
        }
    }
}
