//! The encrypted-password scheme OCG-C uses on both its binary and FIX interfaces.
//!
//! Plaintext is the UTC login time `YYYYMMDDHHMMSS` followed by the password. It is encrypted
//! with the exchange's RSA-2048 public key (PKCS#1 v1.5 or OAEP; twinsite's OAEP uses SHA-256)
//! and base64-encoded into EncryptedPassword (1402) / EncryptedNewPassword (1404). The exchange
//! decrypts with whichever of its keys works (two are valid during a key rotation) and checks
//! the time prefix is within a tolerance of its own clock.
//!
//! The session layer does not know keys or passwords: it asks a [`LogonVerifier`] supplied by
//! the runtime. [`RsaLogonVerifier`] is the standard one.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::{CryptoRng, RngCore};
use rsa::{Oaep, Pkcs1v15Encrypt, RsaPrivateKey, RsaPublicKey};
use twinsite_core::Timestamp;

use crate::message::Field;
use crate::time::{format_password_time, parse_password_time};

/// RSA padding used to encrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    Pkcs1v15,
    OaepSha256,
}

/// EncryptedPasswordMethod (1400) value twinsite writes: 101, a user-defined value meaning
/// "RSA, base64, time-prefixed" (no public HKEX value found; the acceptor ignores 1400).
pub const ENCRYPTED_PASSWORD_METHOD: &str = "101";

/// Default tolerance between the password's time prefix and the exchange clock.
pub const PASSWORD_TIME_TOLERANCE_SECS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("encrypted password is not valid base64")]
    NotBase64,
    #[error("encrypted password does not decrypt with any exchange key")]
    Decrypt,
    #[error("decrypted password does not start with a UTC time YYYYMMDDHHMMSS")]
    BadTimePrefix,
    #[error("password time prefix is {skew_secs} s away from the exchange clock")]
    TimeOutOfWindow { skew_secs: u64 },
    #[error("encryption failed: {0}")]
    Encrypt(String),
}

/// Encrypt `password` for a logon at `login_time`.
pub fn encrypt_password<R: RngCore + CryptoRng>(
    key: &RsaPublicKey,
    login_time: Timestamp,
    password: &str,
    padding: Padding,
    rng: &mut R,
) -> Result<String, PasswordError> {
    let plaintext = format!("{}{password}", format_password_time(login_time));
    let result = match padding {
        Padding::Pkcs1v15 => key.encrypt(rng, Pkcs1v15Encrypt, plaintext.as_bytes()),
        Padding::OaepSha256 => key.encrypt(rng, Oaep::new::<sha2::Sha256>(), plaintext.as_bytes()),
    };
    result
        .map(|c| BASE64.encode(c))
        .map_err(|e| PasswordError::Encrypt(e.to_string()))
}

/// Decrypt with any of `keys` (either padding), check the time prefix against `now`, return the
/// password.
pub fn decrypt_password(
    keys: &[RsaPrivateKey],
    encrypted: &str,
    now: Timestamp,
    tolerance_secs: u64,
) -> Result<String, PasswordError> {
    let ciphertext = BASE64
        .decode(encrypted.trim())
        .map_err(|_| PasswordError::NotBase64)?;
    let plaintext = keys
        .iter()
        .find_map(|k| {
            k.decrypt(Pkcs1v15Encrypt, &ciphertext)
                .or_else(|_| k.decrypt(Oaep::new::<sha2::Sha256>(), &ciphertext))
                .ok()
        })
        .ok_or(PasswordError::Decrypt)?;
    let text = String::from_utf8(plaintext).map_err(|_| PasswordError::BadTimePrefix)?;
    let (prefix, password) = text
        .split_at_checked(14)
        .ok_or(PasswordError::BadTimePrefix)?;
    let login_time = parse_password_time(prefix).ok_or(PasswordError::BadTimePrefix)?;
    let skew_secs = now.secs().abs_diff(login_time.secs());
    if skew_secs > tolerance_secs {
        return Err(PasswordError::TimeOutOfWindow { skew_secs });
    }
    Ok(password.to_string())
}

/// What a participant's Logon carried for authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogonCredentials {
    pub sender_comp_id: String,
    pub encrypted_password_method: Option<String>,
    pub encrypted_password: Option<String>,
    pub encrypted_new_password: Option<String>,
    /// Plain Password (554); OCG-C expects the encrypted form, a verifier may refuse this.
    pub password: Option<String>,
    pub new_password: Option<String>,
}

/// FIX SessionStatus (1409) values.
pub mod session_status {
    pub const ACTIVE: u32 = 0;
    pub const PASSWORD_CHANGED: u32 = 1;
    pub const PASSWORD_DUE_TO_EXPIRE: u32 = 2;
    pub const NEW_PASSWORD_NOT_COMPLIANT: u32 = 3;
    pub const LOGOUT_COMPLETE: u32 = 4;
    pub const INVALID_USERNAME_OR_PASSWORD: u32 = 5;
    pub const ACCOUNT_LOCKED: u32 = 6;
    pub const LOGONS_NOT_ALLOWED: u32 = 7;
    pub const PASSWORD_EXPIRED: u32 = 8;
}

/// The runtime's answer to a Logon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogonDecision {
    /// Accept; `new_password` is the decrypted new password if one was sent and accepted (the
    /// runtime stores it), and the Logon reply then carries SessionStatus 1.
    Accept { new_password: Option<String> },
    /// Refuse with a Logout carrying SessionStatus and Text, then disconnect.
    Reject { session_status: u32, text: String },
    /// Disconnect without a message (unknown Comp ID, source IP, duplicate session).
    Drop,
}

/// Decides Logons. The runtime supplies it (keys, password store, lockout counters).
pub trait LogonVerifier {
    fn verify(&mut self, credentials: &LogonCredentials, now: Timestamp) -> LogonDecision;
}

impl<F> LogonVerifier for F
where
    F: FnMut(&LogonCredentials, Timestamp) -> LogonDecision,
{
    fn verify(&mut self, credentials: &LogonCredentials, now: Timestamp) -> LogonDecision {
        self(credentials, now)
    }
}

/// The standard verifier: decrypts with the exchange's keys and compares with the password the
/// lookup returns for the Comp ID. Lockout and expiry belong to the runtime's password store.
pub struct RsaLogonVerifier<L> {
    keys: Vec<RsaPrivateKey>,
    tolerance_secs: u64,
    lookup: L,
}

impl<L: FnMut(&str) -> Option<String>> RsaLogonVerifier<L> {
    /// `lookup(comp_id)` returns the current password, `None` for an unknown Comp ID.
    pub fn new(keys: Vec<RsaPrivateKey>, tolerance_secs: u64, lookup: L) -> Self {
        RsaLogonVerifier {
            keys,
            tolerance_secs,
            lookup,
        }
    }
}

impl<L: FnMut(&str) -> Option<String>> LogonVerifier for RsaLogonVerifier<L> {
    fn verify(&mut self, c: &LogonCredentials, now: Timestamp) -> LogonDecision {
        let invalid = |text: &str| LogonDecision::Reject {
            session_status: session_status::INVALID_USERNAME_OR_PASSWORD,
            text: text.to_string(),
        };
        let Some(expected) = (self.lookup)(&c.sender_comp_id) else {
            return LogonDecision::Drop;
        };
        let Some(encrypted) = &c.encrypted_password else {
            return invalid("EncryptedPassword (1402) required");
        };
        match decrypt_password(&self.keys, encrypted, now, self.tolerance_secs) {
            Ok(p) if p == expected => {}
            Ok(_) => return invalid("invalid password"),
            Err(e) => return invalid(&e.to_string()),
        }
        let Some(encrypted_new) = &c.encrypted_new_password else {
            return LogonDecision::Accept { new_password: None };
        };
        match decrypt_password(&self.keys, encrypted_new, now, self.tolerance_secs) {
            Ok(new) if password_policy_ok(&new) && new != expected => LogonDecision::Accept {
                new_password: Some(new),
            },
            Ok(_) => LogonDecision::Reject {
                session_status: session_status::NEW_PASSWORD_NOT_COMPLIANT,
                text: "new password must be 8 letters and digits, mixed, and not the current one"
                    .into(),
            },
            Err(e) => invalid(&e.to_string()),
        }
    }
}

/// OCG-C password policy: exactly 8 characters, letters and digits, at least one of each.
pub fn password_policy_ok(p: &str) -> bool {
    p.len() == 8
        && p.bytes().all(|c| c.is_ascii_alphanumeric())
        && p.bytes().any(|c| c.is_ascii_alphabetic())
        && p.bytes().any(|c| c.is_ascii_digit())
}

/// A participant's side: produces the Logon's password fields at logon time.
pub struct RsaCredentials<R> {
    pub key: RsaPublicKey,
    pub password: String,
    pub new_password: Option<String>,
    pub padding: Padding,
    pub rng: R,
}

impl<R: RngCore + CryptoRng> RsaCredentials<R> {
    /// Fields 1400, 1402 and optionally 1404 for a Logon sent at `now`.
    pub fn logon_fields(&mut self, now: Timestamp) -> Result<Vec<Field>, PasswordError> {
        let mut fields = vec![
            Field::new(1400, ENCRYPTED_PASSWORD_METHOD),
            Field::new(
                1402,
                encrypt_password(&self.key, now, &self.password, self.padding, &mut self.rng)?,
            ),
        ];
        if let Some(new) = &self.new_password {
            let encrypted = encrypt_password(&self.key, now, new, self.padding, &mut self.rng)?;
            fields.push(Field::new(1404, encrypted));
        }
        Ok(fields)
    }
}

/// A test key pair (2048 bits, generated for twinsite's tests; never use it for anything else).
#[cfg(test)]
pub(crate) fn test_keys() -> (RsaPrivateKey, RsaPublicKey) {
    use rsa::pkcs8::DecodePrivateKey;
    static KEY: std::sync::OnceLock<RsaPrivateKey> = std::sync::OnceLock::new();
    let private = KEY
        .get_or_init(|| {
            RsaPrivateKey::from_pkcs8_pem(include_str!("../testdata/test-rsa-2048.pem"))
                .expect("test key parses")
        })
        .clone();
    let public = private.to_public_key();
    (private, public)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    const NOW: u64 = 1_700_000_000;

    #[test]
    fn round_trip_both_paddings_2048_bit() {
        let (private, public) = test_keys();
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let now = Timestamp::from_secs(NOW);
        for padding in [Padding::Pkcs1v15, Padding::OaepSha256] {
            let b64 = encrypt_password(&public, now, "abcd1234", padding, &mut rng).unwrap();
            assert_eq!(b64.len(), 344, "256 bytes of ciphertext in base64");
            let later = Timestamp::from_secs(NOW + 10);
            assert_eq!(
                decrypt_password(std::slice::from_ref(&private), &b64, later, 60),
                Ok("abcd1234".to_string())
            );
        }
    }

    #[test]
    fn stale_time_prefix_and_garbage_are_refused() {
        let (private, public) = test_keys();
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let b64 = encrypt_password(
            &public,
            Timestamp::from_secs(NOW),
            "abcd1234",
            Padding::Pkcs1v15,
            &mut rng,
        )
        .unwrap();
        let keys = [private];
        assert_eq!(
            decrypt_password(&keys, &b64, Timestamp::from_secs(NOW + 301), 300),
            Err(PasswordError::TimeOutOfWindow { skew_secs: 301 })
        );
        assert_eq!(
            decrypt_password(&keys, "!!!", Timestamp::from_secs(NOW), 300),
            Err(PasswordError::NotBase64)
        );
        assert_eq!(
            decrypt_password(&keys, "AAAA", Timestamp::from_secs(NOW), 300),
            Err(PasswordError::Decrypt)
        );
    }

    #[test]
    fn verifier_accepts_changes_and_refuses() {
        let (private, public) = test_keys();
        let now = Timestamp::from_secs(NOW);
        let mut creds = RsaCredentials {
            key: public,
            password: "abcd1234".into(),
            new_password: Some("wxyz9876".into()),
            padding: Padding::OaepSha256,
            rng: ChaCha20Rng::seed_from_u64(9),
        };
        let fields = creds.logon_fields(now).unwrap();
        let mut verifier = RsaLogonVerifier::new(vec![private], 300, |comp: &str| {
            (comp == "CO01").then(|| "abcd1234".to_string())
        });
        let mut c = LogonCredentials {
            sender_comp_id: "CO01".into(),
            encrypted_password: Some(fields[1].value.to_string()),
            encrypted_new_password: Some(fields[2].value.to_string()),
            ..LogonCredentials::default()
        };
        assert_eq!(
            verifier.verify(&c, now),
            LogonDecision::Accept {
                new_password: Some("wxyz9876".into())
            }
        );
        c.sender_comp_id = "NOBODY".into();
        assert_eq!(verifier.verify(&c, now), LogonDecision::Drop);
        c.sender_comp_id = "CO01".into();
        c.encrypted_password = None;
        assert!(matches!(
            verifier.verify(&c, now),
            LogonDecision::Reject {
                session_status: session_status::INVALID_USERNAME_OR_PASSWORD,
                ..
            }
        ));
    }

    #[test]
    fn policy() {
        assert!(password_policy_ok("abcd1234"));
        assert!(!password_policy_ok("abcdefgh"));
        assert!(!password_policy_ok("abc1234"));
        assert!(!password_policy_ok("abcd-234"));
    }
}
