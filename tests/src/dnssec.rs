//! Signing test zones with Debian's ldnsutils, the way an operator signs
//! them before handing them to an authoritative server.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// A zone signed in a test directory.
pub struct SignedZone {
    /// The signed zone file.
    pub path: PathBuf,
    /// The key-signing key's file base name (`K<origin>+013+<tag>`): its
    /// `.ds` and `.key` files are the zone's trust anchor.
    pub ksk: String,
}

/// Writes `text` as `<origin>zone` in `dir`, makes an ECDSA P-256 KSK and
/// ZSK, and signs the zone with `ldns-signzone` and `sign_args` (none:
/// NSEC; `-n`: NSEC3; `-n -p`: NSEC3 opt-out).
pub fn sign_zone(dir: &Path, origin: &str, text: &str, sign_args: &[&str]) -> SignedZone {
    let bare = origin.trim_end_matches('.');
    let file = format!("{bare}.zone");
    std::fs::write(dir.join(&file), text).expect("writing the zone");
    let keygen = |ksk: bool| -> String {
        let mut cmd = Command::new("ldns-keygen");
        cmd.current_dir(dir).args(["-a", "ECDSAP256SHA256"]);
        if ksk {
            cmd.arg("-k");
        }
        let out = cmd.arg(bare).output().expect("running ldns-keygen");
        assert!(out.status.success(), "ldns-keygen: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let (ksk, zsk) = (keygen(true), keygen(false));
    let out = Command::new("ldns-signzone")
        .current_dir(dir)
        .args(sign_args)
        .args(["-o", origin, &file, &ksk, &zsk])
        .output()
        .expect("running ldns-signzone");
    assert!(out.status.success(), "ldns-signzone: {}", String::from_utf8_lossy(&out.stderr));
    SignedZone { path: dir.join(format!("{file}.signed")), ksk }
}
