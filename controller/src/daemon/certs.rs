//! The webhook's certificates: a CA whose key lives in a Secret, and serving
//! certificates each replica issues from it in memory and rotates.
//!
//! Why a Secret and not a CA in memory: both controller replicas sit behind
//! one Service and the API server picks either, so both must present a
//! certificate the one `caBundle` trusts; and a replica that restarts, or a
//! new leader, must not invalidate the `caBundle` the API server holds while
//! Terway's DaemonSet is written. A CA in each replica's memory gives neither.
//! The Secret (`terway-hybrid/terway-hybrid-webhook-ca`) is readable by the
//! controller's ServiceAccount by name only (docs/architecture.md, RBAC).
//!
//! Why rotating the serving certificate loses no request: every serving
//! certificate is issued by the same CA, which the `caBundle` already holds,
//! so the old and the new one are both trusted; the new one is swapped in for
//! new TLS handshakes ([`Resolver`]) while connections already open finish
//! on the old one.

use crate::api_error::ApiError;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::PostParams;
use kube::Api;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The Secret's keys.
const CA_CERT_KEY: &str = "ca.crt";
const CA_KEY_KEY: &str = "ca.key";
const CA_NAME: &str = "terway-hybrid webhook CA";
/// The CA outlives any cluster this is installed on; what rotates is the
/// serving certificate (see the module docs).
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Serving certificates start this far in the past: the API server's clock
/// may be behind ours.
const BACKDATE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("serving key: {0}")]
    Rustls(#[from] rustls::Error),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("Secret {namespace}/{name} has no {key}")]
    Missing { namespace: String, name: String, key: &'static str },
}

/// The webhook's CA: the certificate (PEM, what the caBundle carries) and
/// the key that issues serving certificates.
pub struct Ca {
    pub cert_pem: String,
    key: KeyPair,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

impl Ca {
    /// A new CA (ECDSA P-256), valid for ten years.
    fn generate() -> Result<Ca, CertError> {
        let key = KeyPair::generate()?;
        let mut params = ca_params();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        let cert = params.self_signed(&key)?;
        Ok(Ca { cert_pem: cert.pem(), key })
    }

    /// The CA as the Secret stores it. Leaves are issued under the same
    /// subject and key identifier (both derive from the fixed name and the
    /// key), so they chain to the stored certificate.
    fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, CertError> {
        Ok(Ca { cert_pem: cert_pem.to_owned(), key: KeyPair::from_pem(key_pem)? })
    }

    /// A serving certificate for `names` (DNS names or IP addresses), valid
    /// for `validity`, with its key, ready for rustls.
    pub fn issue(&self, names: &[String], validity: Duration) -> Result<Arc<CertifiedKey>, CertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "terway-hybrid-controller webhook");
        params.distinguished_name = dn;
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + validity;
        let issuer = Issuer::new(ca_params(), &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing = rustls::crypto::ring::sign::any_supported_type(&der)?;
        Ok(Arc::new(CertifiedKey::new(vec![CertificateDer::from(cert.der().to_vec())], signing)))
    }
}

/// Reads the CA from its Secret, creating it (and the Secret) when missing.
/// Two replicas starting together both try to create it: the loser of the
/// race (409) reads the winner's.
pub async fn load_or_create(api: &Api<Secret>, namespace: &str, name: &str) -> Result<Ca, CertError> {
    let err = |source| CertError::Api(ApiError { what: format!("Secret {namespace}/{name}"), source });
    if let Some(secret) = api.get_opt(name).await.map_err(err)? {
        return from_secret(&secret, namespace, name);
    }
    let ca = Ca::generate()?;
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/part-of".to_owned(),
                "terway-hybrid".to_owned(),
            )])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            (CA_CERT_KEY.to_owned(), ByteString(ca.cert_pem.clone().into_bytes())),
            (CA_KEY_KEY.to_owned(), ByteString(ca.key.serialize_pem().into_bytes())),
        ])),
        type_: Some("Opaque".to_owned()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(secret = %format!("{namespace}/{name}"), "created the webhook CA");
            Ok(ca)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let secret = api.get(name).await.map_err(err)?;
            from_secret(&secret, namespace, name)
        }
        Err(e) => Err(err(e)),
    }
}

fn from_secret(secret: &Secret, namespace: &str, name: &str) -> Result<Ca, CertError> {
    let get = |key: &'static str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .filter(|s| !s.is_empty())
            .ok_or(CertError::Missing { namespace: namespace.to_owned(), name: name.to_owned(), key })
    };
    Ca::from_pem(&get(CA_CERT_KEY)?, &get(CA_KEY_KEY)?)
}

/// The serving certificate, swapped under a running TLS server: each new
/// handshake gets the certificate current at that moment.
#[derive(Debug)]
pub struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Resolver {
    pub fn new(initial: Arc<CertifiedKey>) -> Arc<Resolver> {
        Arc::new(Resolver { current: RwLock::new(initial) })
    }

    pub fn swap(&self, next: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn a_reloaded_ca_issues_certificates_that_chain_to_the_stored_one() {
        let ca = Ca::generate().unwrap();
        let reloaded = Ca::from_pem(&ca.cert_pem, &ca.key.serialize_pem()).unwrap();
        let leaf =
            reloaded.issue(&["127.0.0.1".into(), "svc.ns.svc".into()], Duration::from_secs(60)).unwrap();
        // rustls' own verifier, with the stored CA as the only root.
        let mut roots = rustls::RootCertStore::empty();
        let ca_der = rustls::pki_types::pem::PemObject::from_pem_slice(ca.cert_pem.as_bytes()).unwrap();
        roots.add(ca_der).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        for name in ["127.0.0.1", "svc.ns.svc"] {
            let server_name = rustls::pki_types::ServerName::try_from(name).unwrap();
            verifier
                .verify_server_cert(&leaf.cert[0], &[], &server_name, &[], rustls::pki_types::UnixTime::now())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let other = rustls::pki_types::ServerName::try_from("elsewhere.example").unwrap();
        assert!(verifier
            .verify_server_cert(&leaf.cert[0], &[], &other, &[], rustls::pki_types::UnixTime::now())
            .is_err());
    }
}
