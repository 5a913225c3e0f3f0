import Foundation
import GRPCNIOTransportHTTP2
import NIOSSL

/// The certificate chain, private key and optional client CA that every TCP listener serves TLS
/// with. The files are read once, when this is made; replacing them takes a restart.
package struct ServerTLS: Sendable {
    /// The certificate chain in PEM, leaf first (flag `--tls-cert-file`).
    let certificateChainPEM: [UInt8]
    /// The leaf certificate's private key in PEM (flag `--tls-key-file`).
    let privateKeyPEM: [UInt8]
    /// CA certificates in PEM that a client certificate must chain to; when set, every client must
    /// present one (mTLS) (flag `--tls-client-ca-file`).
    let clientCAPEM: [UInt8]?
    /// The same, for the HTTP listeners.
    let httpConfiguration: TLSConfiguration

    /// Whether clients must present a certificate signed by the client CA.
    package var requiresClientCertificate: Bool { clientCAPEM != nil }

    /// Reads and checks the PEM files.
    /// - Throws: `TLSSetupError` naming the file that is missing, unreadable or not what it should
    ///   be, or a key that does not belong to the certificate.
    package init(certificateFile: String, privateKeyFile: String, clientCAFile: String? = nil) throws {
        certificateChainPEM = try Self.read(certificateFile, what: "TLS certificate file (--tls-cert-file)")
        privateKeyPEM = try Self.read(privateKeyFile, what: "TLS key file (--tls-key-file)")
        clientCAPEM = try clientCAFile.map { try Self.read($0, what: "TLS client CA file (--tls-client-ca-file)") }

        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(certificateChainPEM)
        } catch {
            chain = []
        }
        guard !chain.isEmpty else {
            throw TLSSetupError(
                .invalidCertificate, "the TLS certificate file \(certificateFile) holds no PEM certificate")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: privateKeyPEM, format: .pem)
        } catch {
            throw TLSSetupError(
                .invalidPrivateKey,
                "the TLS key file \(privateKeyFile) holds no unencrypted PEM private key", cause: error)
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        if let clientCAFile, let clientCAPEM {
            let authorities: [NIOSSLCertificate]
            do {
                authorities = try NIOSSLCertificate.fromPEMBytes(clientCAPEM)
            } catch {
                authorities = []
            }
            guard !authorities.isEmpty else {
                throw TLSSetupError(
                    .invalidClientCA, "the TLS client CA file \(clientCAFile) holds no PEM certificate")
            }
            // Clients are not named by host, so only the chain to the CA is checked.
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .certificates(authorities)
            configuration.sendCANameList = true
        }
        // Loading the key into a context is where BoringSSL compares it with the leaf certificate.
        do {
            _ = try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSSetupError(
                .keyMismatch,
                "the TLS key file \(privateKeyFile) is not the private key of the certificate in \(certificateFile)",
                cause: error)
        }
        httpConfiguration = configuration
    }

    /// The same credentials for the gRPC listener (HTTP/2 over TLS, ALPN `h2`).
    var grpcSecurity: HTTP2ServerTransport.Posix.TransportSecurity {
        let chain: [TLSConfig.CertificateSource] = [.bytes(certificateChainPEM, format: .pem)]
        let key = TLSConfig.PrivateKeySource.bytes(privateKeyPEM, format: .pem)
        guard let clientCAPEM else { return .tls(certificateChain: chain, privateKey: key) }
        return .mTLS(certificateChain: chain, privateKey: key) { config in
            config.trustRoots = .certificates([.bytes(clientCAPEM, format: .pem)])
        }
    }

    private static func read(_ path: String, what: String) throws -> [UInt8] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TLSSetupError(.unreadableFile, "cannot read the \(what) \(path): no such file")
        }
        guard !isDirectory.boolValue, let data = FileManager.default.contents(atPath: path) else {
            throw TLSSetupError(.unreadableFile, "cannot read the \(what) \(path): not a readable file")
        }
        return [UInt8](data)
    }
}
