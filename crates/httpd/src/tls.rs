//! TLS for the HTTPS listener: certificates from PEM files and the five client-certificate
//! modes operators know from Coder (`none`, `request`, `require-any`, `verify-if-given`,
//! `require-and-verify`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

/// How the server treats client certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// Never asks for one.
    #[default]
    None,
    /// Asks, accepts none, does not verify.
    Request,
    /// Requires one, does not verify it.
    RequireAny,
    /// Verifies one against the client CA if sent.
    VerifyIfGiven,
    /// Requires one signed by the client CA.
    RequireAndVerify,
}

impl ClientAuth {
    /// The option's accepted values.
    pub const NAMES: [&str; 5] = [
        "none",
        "request",
        "require-any",
        "verify-if-given",
        "require-and-verify",
    ];
}

impl FromStr for ClientAuth {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(match value {
            "none" => ClientAuth::None,
            "request" => ClientAuth::Request,
            "require-any" => ClientAuth::RequireAny,
            "verify-if-given" => ClientAuth::VerifyIfGiven,
            "require-and-verify" => ClientAuth::RequireAndVerify,
            other => {
                return Err(format!(
                    "{other:?} is not one of {}",
                    ClientAuth::NAMES.join(", ")
                ));
            }
        })
    }
}

/// The oldest TLS version accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl FromStr for TlsVersion {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "tls12" => Ok(TlsVersion::Tls12),
            "tls13" => Ok(TlsVersion::Tls13),
            "tls10" | "tls11" => Err(format!(
                "{value} is obsolete and insecure; use tls12 or tls13"
            )),
            other => Err(format!("{other:?} is not one of tls12, tls13")),
        }
    }
}

/// What the HTTPS listener needs.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// The certificate chain (PEM).
    pub cert_file: PathBuf,
    /// The private key (PEM).
    pub key_file: PathBuf,
    /// Client-certificate handling.
    pub client_auth: ClientAuth,
    /// CA certificates (PEM) that sign client certificates.
    pub client_ca_file: Option<PathBuf>,
    /// The oldest version accepted.
    pub min_version: TlsVersion,
}

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("reading {}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A client-auth mode that verifies needs a CA file.
    #[error("--tls-client-auth={mode} needs --tls-client-ca-file")]
    MissingClientCa {
        /// The mode given.
        mode: &'static str,
    },
    /// rustls rejected the certificate, key or CA.
    #[error("invalid TLS configuration")]
    Rustls(#[source] rustls::Error),
    /// The client verifier could not be built from the CA file.
    #[error("invalid client CA")]
    ClientCa(#[source] rustls::server::VerifierBuilderError),
}

fn pem_error(path: &Path, reason: impl fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| pem_error(path, err))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_error(path, err))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no certificate found"));
    }
    Ok(certs)
}

/// The provider used everywhere in the binary (ring, as iroh uses).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the HTTPS listener's configuration (reads files: call it at start-up).
pub fn server_config(options: &TlsOptions) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = provider();
    let certs = read_certs(&options.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&options.key_file)
        .map_err(|err| pem_error(&options.key_file, err))?;
    let versions: &[&rustls::SupportedProtocolVersion] = match options.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(TlsError::Rustls)?;
    let verifier: Arc<dyn ClientCertVerifier> = match options.client_auth {
        ClientAuth::None => WebPkiClientVerifier::no_client_auth(),
        ClientAuth::Request | ClientAuth::RequireAny => Arc::new(AnyClientCert {
            mandatory: options.client_auth == ClientAuth::RequireAny,
            algorithms: provider.signature_verification_algorithms,
        }),
        mode @ (ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify) => {
            let ca_file = options
                .client_ca_file
                .as_deref()
                .ok_or(TlsError::MissingClientCa {
                    mode: if mode == ClientAuth::VerifyIfGiven {
                        "verify-if-given"
                    } else {
                        "require-and-verify"
                    },
                })?;
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca_file)? {
                roots.add(cert).map_err(TlsError::Rustls)?;
            }
            let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let builder = if mode == ClientAuth::VerifyIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder.build().map_err(TlsError::ClientCa)?
        }
    };
    let mut config = builder
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(TlsError::Rustls)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts any client certificate whose handshake signature is valid, without checking who
/// issued it (`request` and `require-any`).
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_values() {
        for name in ClientAuth::NAMES {
            assert!(name.parse::<ClientAuth>().is_ok(), "{name}");
        }
        assert!("sometimes".parse::<ClientAuth>().is_err());
        assert_eq!("tls13".parse::<TlsVersion>(), Ok(TlsVersion::Tls13));
        assert!(
            "tls10"
                .parse::<TlsVersion>()
                .unwrap_err()
                .contains("obsolete")
        );
    }

    #[test]
    fn builds_from_pem_files_and_needs_ca_for_verification() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert_file = dir.path().join("cert.pem");
        let key_file = dir.path().join("key.pem");
        std::fs::write(&cert_file, cert.cert.pem()).unwrap();
        std::fs::write(&key_file, cert.key_pair.serialize_pem()).unwrap();
        let mut options = TlsOptions {
            cert_file: cert_file.clone(),
            key_file,
            client_auth: ClientAuth::None,
            client_ca_file: None,
            min_version: TlsVersion::Tls12,
        };
        for mode in [
            ClientAuth::None,
            ClientAuth::Request,
            ClientAuth::RequireAny,
        ] {
            options.client_auth = mode;
            server_config(&options).unwrap();
        }
        options.client_auth = ClientAuth::RequireAndVerify;
        let err = server_config(&options).unwrap_err().to_string();
        assert_eq!(
            err,
            "--tls-client-auth=require-and-verify needs --tls-client-ca-file"
        );
        options.client_ca_file = Some(cert_file);
        server_config(&options).unwrap();
        options.client_auth = ClientAuth::VerifyIfGiven;
        server_config(&options).unwrap();
        options.cert_file = dir.path().join("missing.pem");
        assert!(
            server_config(&options)
                .unwrap_err()
                .to_string()
                .starts_with("reading ")
        );
    }
}
