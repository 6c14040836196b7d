//! The roots a client trusts beyond the bundled web roots (webpki's): those of `ca_file`, and
//! with `ca_system` the operating system's own (where a TLS-inspecting corporate proxy's root
//! is installed): on Windows the certificate store (the user's and the machine's Root
//! stores, through `win32/`), elsewhere the distribution's bundle
//! (`SSL_CERT_FILE`, or the first of the usual places).

#![forbid(unsafe_code)]

use std::path::Path;

use crate::error::Error;
use crate::secret::shown;

/// The DER of every extra root: `ca_file`'s, then the system's.
pub(crate) fn extra(ca_file: Option<&Path>, ca_system: bool) -> Result<Vec<Vec<u8>>, Error> {
    let mut roots = match ca_file {
        Some(path) => read_ca_file(path)?,
        None => Vec::new(),
    };
    if ca_system {
        roots.extend(system()?);
    }
    Ok(roots)
}

/// A PEM file's certificates; a file with none, or not PEM, is an error naming it.
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<Vec<u8>>, Error> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::config(format!("cannot read ca_file {}: {}", shown(path), e.kind())))?;
    let roots = pem_certificates(&pem)
        .ok_or_else(|| Error::config(format!("ca_file {} is not valid PEM", shown(path))))?;
    if roots.is_empty() {
        return Err(Error::config(format!(
            "ca_file {} holds no certificate",
            shown(path)
        )));
    }
    Ok(roots)
}

fn pem_certificates(pem: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut roots = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => roots.push(cert.der().to_vec()),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    Some(roots)
}

/// The Windows certificate store's roots (the user's and the machine's Root stores, those
/// good for server authentication). None at all is an error: `ca_system` was asked for.
#[cfg(windows)]
fn system() -> Result<Vec<Vec<u8>>, Error> {
    let roots = crate::win32::store_roots();
    if roots.is_empty() {
        return Err(Error::config(
            "ca_system: no root certificate in the Windows certificate store",
        ));
    }
    crate::log::debug!(
        "ca_system: {} roots from the Windows certificate store",
        roots.len()
    );
    Ok(roots)
}

/// The distribution's bundle: `SSL_CERT_FILE` (as OpenSSL reads it), else the first of the
/// usual places that exists.
#[cfg(not(windows))]
fn system() -> Result<Vec<Vec<u8>>, Error> {
    const PLACES: &[&str] = &[
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ];
    let file = std::env::var_os("SSL_CERT_FILE")
        .filter(|f| !f.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            PLACES
                .iter()
                .map(std::path::PathBuf::from)
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            Error::config("ca_system: no system bundle of root certificates (set SSL_CERT_FILE)")
        })?;
    let pem = std::fs::read(&file).map_err(|e| {
        Error::config(format!(
            "ca_system: cannot read {}: {}",
            shown(&file),
            e.kind()
        ))
    })?;
    match pem_certificates(&pem) {
        Some(roots) if !roots.is_empty() => {
            crate::log::debug!("ca_system: {} roots from {}", roots.len(), shown(&file));
            Ok(roots)
        }
        _ => Err(Error::config(format!(
            "ca_system: {} holds no PEM certificate",
            shown(&file)
        ))),
    }
}
