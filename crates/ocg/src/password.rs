//! Logon password encryption and policy (reference §1.6).
//!
//! The Password and New Password fields carry base64(RSA-2048(UTC `YYYYMMDDHHMMSS` + password))
//! with PKCS#1 v1.5 or OAEP padding. The server accepts either padding and up to two private
//! keys (a key rotation's grace period), and checks the timestamp against its own clock within a
//! configurable tolerance.

use base64::Engine as _;
use rand::{CryptoRng, RngCore};
use rsa::{Oaep, Pkcs1v15Encrypt, RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use twinsite_core::time::{days_from_civil, NANOS_PER_SEC};
use twinsite_core::Timestamp;

/// Length of the `YYYYMMDDHHMMSS` prefix.
pub const TIMESTAMP_PREFIX_LEN: usize = 14;
/// Exactly this many characters (reference §1.6).
pub const PASSWORD_LEN: usize = 8;
/// A new password must not repeat one of the last this many.
pub const PASSWORD_HISTORY: usize = 5;

/// Which RSA padding a client uses. OAEP uses SHA-256 (the reference does not name the digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Padding {
    Pkcs1v15,
    OaepSha256,
}

/// Why an encrypted password could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password field is not base64")]
    NotBase64,
    #[error("no configured key decrypts the password")]
    Undecryptable,
    #[error("decrypted password has no valid UTC timestamp prefix")]
    BadTimestamp,
    #[error("password timestamp is {skew_secs} s away from the server clock")]
    StaleTimestamp { skew_secs: u64 },
    #[error("encryption failed")]
    Encryption,
}

/// Why a new password breaks the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    #[error("password must be exactly 8 characters")]
    Length,
    #[error("password must mix letters and digits and contain nothing else")]
    Composition,
    #[error("password repeats one of the last 5")]
    Reused,
    #[error("password was already changed today")]
    ChangedToday,
}

/// `YYYYMMDDHHMMSS` (UTC) for a timestamp.
pub fn utc_stamp(now: Timestamp) -> String {
    let (y, mo, d, h, mi, s, _) = now.to_utc_civil();
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

fn parse_utc_stamp(s: &[u8]) -> Option<Timestamp> {
    if s.len() != TIMESTAMP_PREFIX_LEN || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |a: usize, b: usize| -> u32 {
        s[a..b]
            .iter()
            .fold(0, |acc, d| acc * 10 + (d - b'0') as u32)
    };
    let (y, mo, d, h, mi, sec) = (
        num(0, 4),
        num(4, 6),
        num(6, 8),
        num(8, 10),
        num(10, 12),
        num(12, 14),
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(y as i32, mo, d);
    let secs = days * 86_400 + (h * 3600 + mi * 60 + sec) as i64;
    u64::try_from(secs).ok().map(Timestamp::from_secs)
}

/// Client side: encrypt `password` for the Logon Password / New Password field.
pub fn encrypt_password<R: RngCore + CryptoRng>(
    key: &RsaPublicKey,
    padding: Padding,
    now: Timestamp,
    password: &str,
    rng: &mut R,
) -> Result<String, PasswordError> {
    let plain = format!("{}{password}", utc_stamp(now));
    let cipher = match padding {
        Padding::Pkcs1v15 => key.encrypt(rng, Pkcs1v15Encrypt, plain.as_bytes()),
        Padding::OaepSha256 => key.encrypt(rng, Oaep::new::<Sha256>(), plain.as_bytes()),
    }
    .map_err(|_| PasswordError::Encryption)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(cipher))
}

/// Server side: decrypt with any of `keys` and either padding, check the timestamp is within
/// `tolerance_ns` of `now`, and return the plain password.
pub fn decrypt_password(
    keys: &[RsaPrivateKey],
    field: &str,
    now: Timestamp,
    tolerance_ns: u64,
) -> Result<String, PasswordError> {
    let cipher = base64::engine::general_purpose::STANDARD
        .decode(field.trim_end())
        .map_err(|_| PasswordError::NotBase64)?;
    let plain = keys
        .iter()
        .find_map(|k| {
            k.decrypt(Pkcs1v15Encrypt, &cipher)
                .or_else(|_| k.decrypt(Oaep::new::<Sha256>(), &cipher))
                .ok()
        })
        .ok_or(PasswordError::Undecryptable)?;
    if plain.len() < TIMESTAMP_PREFIX_LEN {
        return Err(PasswordError::BadTimestamp);
    }
    let stamp =
        parse_utc_stamp(&plain[..TIMESTAMP_PREFIX_LEN]).ok_or(PasswordError::BadTimestamp)?;
    let skew = stamp.0.abs_diff(now.0);
    if skew > tolerance_ns {
        return Err(PasswordError::StaleTimestamp {
            skew_secs: skew / NANOS_PER_SEC,
        });
    }
    String::from_utf8(plain[TIMESTAMP_PREFIX_LEN..].to_vec())
        .map_err(|_| PasswordError::BadTimestamp)
}

/// Stored form of a password: SHA-256 of Comp ID and password, hex. The simulator never keeps
/// plain passwords in replicated state.
pub fn password_digest(comp_id: &str, password: &str) -> String {
    let mut h = Sha256::new();
    h.update(comp_id.as_bytes());
    h.update([0u8]);
    h.update(password.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A Comp ID's password and its lock state, part of the replicated session state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// [`password_digest`] of the current password.
    pub digest: String,
    /// Digests of previous passwords, newest last, at most [`PASSWORD_HISTORY`] - 1.
    pub history: Vec<String>,
    /// HKT day number (days since epoch) of the last change.
    pub changed_day: Option<i64>,
    /// HKT day number after which the password has expired.
    pub expires_day: i64,
    /// Set by an HKEX reset: the next logon must change the password.
    pub must_change: bool,
    /// Consecutive invalid passwords.
    pub failures: u32,
    pub locked: bool,
}

impl Credentials {
    /// A freshly issued (or reset) password: must be changed at first logon.
    pub fn issued(comp_id: &str, password: &str, today: i64, expiry_days: i64) -> Self {
        Credentials {
            digest: password_digest(comp_id, password),
            history: Vec::new(),
            changed_day: None,
            expires_day: today + expiry_days,
            must_change: true,
            failures: 0,
            locked: false,
        }
    }

    pub fn matches(&self, comp_id: &str, password: &str) -> bool {
        self.digest == password_digest(comp_id, password)
    }

    /// Check a new password against the policy.
    pub fn check_new(&self, comp_id: &str, new: &str, today: i64) -> Result<(), PolicyViolation> {
        if new.len() != PASSWORD_LEN {
            return Err(PolicyViolation::Length);
        }
        let alnum = new.bytes().all(|b| b.is_ascii_alphanumeric());
        let letter = new.bytes().any(|b| b.is_ascii_alphabetic());
        let digit = new.bytes().any(|b| b.is_ascii_digit());
        if !(alnum && letter && digit) {
            return Err(PolicyViolation::Composition);
        }
        let d = password_digest(comp_id, new);
        if d == self.digest || self.history.contains(&d) {
            return Err(PolicyViolation::Reused);
        }
        if self.changed_day == Some(today) {
            return Err(PolicyViolation::ChangedToday);
        }
        Ok(())
    }

    /// Install a new password (already checked).
    pub fn change(&mut self, comp_id: &str, new: &str, today: i64, expiry_days: i64) {
        let old = std::mem::replace(&mut self.digest, password_digest(comp_id, new));
        self.history.push(old);
        while self.history.len() > PASSWORD_HISTORY - 1 {
            self.history.remove(0);
        }
        self.changed_day = Some(today);
        self.expires_day = today + expiry_days;
        self.must_change = false;
    }
}

/// HKT day number of a timestamp (password expiry and "one change per day" use the HK day).
pub fn hkt_day(now: Timestamp) -> i64 {
    (now.secs() as i64 + twinsite_core::time::HKT_OFFSET_SECS).div_euclid(86_400)
}

#[cfg(test)]
pub(crate) mod test_keys {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::RsaPrivateKey;

    pub(crate) fn key_a() -> RsaPrivateKey {
        RsaPrivateKey::from_pkcs8_pem(include_str!("../testdata/test_key_a.pem")).unwrap()
    }
    pub(crate) fn key_b() -> RsaPrivateKey {
        RsaPrivateKey::from_pkcs8_pem(include_str!("../testdata/test_key_b.pem")).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const NOW: Timestamp = Timestamp(1_700_000_000 * NANOS_PER_SEC);

    #[test]
    fn utc_stamp_is_fourteen_digits() {
        assert_eq!(utc_stamp(NOW), "20231114221320");
        assert_eq!(parse_utc_stamp(b"20231114221320"), Some(NOW));
    }

    #[test]
    fn both_paddings_and_both_rotation_keys_decrypt() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (a, b) = (test_keys::key_a(), test_keys::key_b());
        let keys = [a.clone(), b.clone()];
        for (key, padding) in [(&a, Padding::Pkcs1v15), (&b, Padding::OaepSha256)] {
            let field =
                encrypt_password(&key.to_public_key(), padding, NOW, "abcd1234", &mut rng).unwrap();
            assert_eq!(field.len(), 344, "256 bytes of ciphertext in base64");
            assert_eq!(
                decrypt_password(&keys, &field, NOW, 60 * NANOS_PER_SEC).unwrap(),
                "abcd1234"
            );
        }
        let only_a = [a];
        let field = encrypt_password(
            &b.to_public_key(),
            Padding::Pkcs1v15,
            NOW,
            "abcd1234",
            &mut rng,
        )
        .unwrap();
        assert_eq!(
            decrypt_password(&only_a, &field, NOW, 60 * NANOS_PER_SEC),
            Err(PasswordError::Undecryptable)
        );
    }

    #[test]
    fn stale_timestamp_is_refused() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let a = test_keys::key_a();
        let field = encrypt_password(
            &a.to_public_key(),
            Padding::Pkcs1v15,
            NOW,
            "abcd1234",
            &mut rng,
        )
        .unwrap();
        let later = NOW.plus_nanos(301 * NANOS_PER_SEC);
        assert_eq!(
            decrypt_password(&[a], &field, later, 300 * NANOS_PER_SEC),
            Err(PasswordError::StaleTimestamp { skew_secs: 301 })
        );
    }

    #[test]
    fn policy_requires_eight_mixed_characters_not_recently_used() {
        let mut c = Credentials::issued("CO1", "init1234", 100, 90);
        assert_eq!(
            c.check_new("CO1", "abc12345x", 100),
            Err(PolicyViolation::Length)
        );
        assert_eq!(
            c.check_new("CO1", "abcdefgh", 100),
            Err(PolicyViolation::Composition)
        );
        assert_eq!(
            c.check_new("CO1", "1234567!", 100),
            Err(PolicyViolation::Composition)
        );
        assert_eq!(
            c.check_new("CO1", "init1234", 100),
            Err(PolicyViolation::Reused)
        );
        for (day, pw) in ["pass0001", "pass0002", "pass0003", "pass0004", "pass0005"]
            .iter()
            .enumerate()
        {
            c.check_new("CO1", pw, 101 + day as i64).unwrap();
            c.change("CO1", pw, 101 + day as i64, 90);
        }
        // The last five are pass0001..pass0005; the initial password has left the history.
        assert_eq!(
            c.check_new("CO1", "pass0001", 200),
            Err(PolicyViolation::Reused)
        );
        assert_eq!(c.check_new("CO1", "init1234", 200), Ok(()));
        assert_eq!(
            c.check_new("CO1", "pass0009", 105),
            Err(PolicyViolation::ChangedToday)
        );
    }
}
