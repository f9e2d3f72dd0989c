//! Fake but PEM-shaped CSRs and keys, and a best-effort CN reader that also works on real
//! DER CSRs (it looks for the commonName OID 2.5.4.3 and reads the string after it).

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;

/// Standard alphabet, padding optional, stray low bits tolerated: a reader of what a
/// billing pasted, not a validator.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

pub fn base64_encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Decode base64 (standard or URL-safe alphabet), skipping whitespace; stops at the first
/// `=` or invalid character, and drops a last character that makes no whole byte.
pub fn base64_decode(s: &str) -> Vec<u8> {
    let mut text = Vec::with_capacity(s.len());
    for c in s.bytes() {
        match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => text.push(c),
            b'-' => text.push(b'+'),
            b'_' => text.push(b'/'),
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => break,
        }
    }
    if text.len() % 4 == 1 {
        text.pop();
    }
    LENIENT.decode(&text).unwrap_or_default()
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A PEM "CSR" whose DER-ish body carries the CN the way a real one does (OID 2.5.4.3 then
/// a UTF8String), so [`common_name`] reads it back.
pub fn fake_csr(cn: &str) -> String {
    let cn = &cn.as_bytes()[..cn.len().min(127)];
    let mut der = b"sandbox fake certificate request ".to_vec();
    der.extend_from_slice(&[0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, cn.len() as u8]);
    der.extend_from_slice(cn);
    pem("CERTIFICATE REQUEST", &der)
}

/// A PEM "private key" of random bytes.
pub fn fake_key() -> String {
    let bytes: Vec<u8> = (0..96).map(|_| rand::random::<u8>()).collect();
    pem("PRIVATE KEY", &bytes)
}

pub fn is_csr(s: &str) -> bool {
    s.contains("BEGIN CERTIFICATE REQUEST")
}

/// The CN inside a PEM CSR, as best we can: the first commonName attribute in the DER body.
pub fn common_name(csr: &str) -> Option<String> {
    let start = csr.find("-----BEGIN CERTIFICATE REQUEST-----")?
        + "-----BEGIN CERTIFICATE REQUEST-----".len();
    let rest = &csr[start..];
    let end = rest.find("-----END").unwrap_or(rest.len());
    let der = base64_decode(&rest[..end]);
    const OID_CN: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    let at = der.windows(OID_CN.len()).position(|w| w == OID_CN)? + OID_CN.len();
    let tag = *der.get(at)?;
    let len = *der.get(at + 1)? as usize;
    if !matches!(tag, 0x0c | 0x13 | 0x16 | 0x14) || len >= 0x80 {
        return None;
    }
    let bytes = der.get(at + 2..at + 2 + len)?;
    let cn = String::from_utf8(bytes.to_vec()).ok()?;
    (!cn.is_empty()).then_some(cn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            assert_eq!(base64_decode(&base64_encode(s.as_bytes())), s.as_bytes());
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        // lenient reading: whitespace, no padding, URL-safe characters, a stray character
        assert_eq!(base64_decode("Zm9v\nYmE"), b"fooba");
        assert_eq!(base64_decode("-_-_"), base64_decode("+/+/"));
        assert_eq!(base64_decode("Zm8=garbage"), b"fo");
        assert_eq!(base64_decode("Zm9vY"), b"foo");
    }

    #[test]
    fn fake_csr_carries_its_cn() {
        let csr = fake_csr("shop.example.com");
        assert!(is_csr(&csr));
        assert_eq!(common_name(&csr).as_deref(), Some("shop.example.com"));
        assert_eq!(
            common_name(
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"
            ),
            None
        );
    }

    #[test]
    fn reads_cn_from_a_real_csr() {
        // openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=real.example.org
        let csr = "-----BEGIN CERTIFICATE REQUEST-----
MIHVMH0CAQAwGzEZMBcGA1UEAwwQcmVhbC5leGFtcGxlLm9yZzBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABEh/fRV2V0+CnH6FDJlrRAGdPKkxrBkkIewIChk6bHI6
jMhIYYnULHhscR1NBEv4NMNTeePj0y/WDYR76YVm7/agADAKBggqhkjOPQQDAgNI
ADBFAiEA6k8+o6wHxoXmqrjBl+xfN3aq1ELB6sjQD/G4Uafco2gCIFsFPf9Rz1bp
rImtwTZrMTyqjg1reLD6MDSvEyqCDVzZ
-----END CERTIFICATE REQUEST-----";
        assert_eq!(common_name(csr).as_deref(), Some("real.example.org"));
    }
}
