//! The RSA ticket ("SPICE" authentication).
//!
//! The server makes a fresh RSA-1024 key pair (public exponent 65537) for every link and
//! sends the public key in the link reply as a 162-byte DER `SubjectPublicKeyInfo`. The
//! client encrypts its password plus a terminating NUL with RSA-OAEP (SHA-1, MGF1-SHA-1,
//! empty label — OpenSSL's `RSA_PKCS1_OAEP_PADDING`) and sends the 128-byte ciphertext.
//! Passwords are limited to 60 bytes (`SPICE_MAX_PASSWORD_LENGTH`).
//!
//! The RSA arithmetic comes from the `rsa` crate. Note its advisory RUSTSEC-2023-0071
//! (Marvin timing side channel in decryption): decryption here uses blinding, and one key
//! only ever decrypts one ticket.

use rand_core::CryptoRngCore;
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};

/// Bits of the ticket key (`SPICE_TICKET_KEY_PAIR_LENGTH`).
pub const KEY_BITS: usize = 1024;
/// Bytes of the DER public key in the link reply (`SPICE_TICKET_PUBKEY_BYTES`).
pub const PUBKEY_BYTES: usize = KEY_BITS / 8 + 34;
/// Bytes of the encrypted ticket (`RSA_size` of a 1024-bit key).
pub const ENCRYPTED_TICKET_BYTES: usize = KEY_BITS / 8;
/// Longest password in bytes (`SPICE_MAX_PASSWORD_LENGTH`).
pub const MAX_PASSWORD_LEN: usize = 60;

/// What went wrong with a ticket or a ticket key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// The password is longer than [`MAX_PASSWORD_LEN`] bytes.
    #[error("password of {len} bytes is longer than the {MAX_PASSWORD_LEN}-byte limit")]
    PasswordTooLong {
        /// Its length.
        len: usize,
    },
    /// The password contains a NUL byte, which the peer would read as its end.
    #[error("password contains a NUL byte")]
    PasswordContainsNul,
    /// The public key bytes are not a DER RSA `SubjectPublicKeyInfo`.
    #[error("invalid RSA public key")]
    InvalidPublicKey,
    /// The public key is not a 1024-bit RSA key (its DER form is not 162 bytes).
    #[error("public key has the wrong size ({bytes} bytes)")]
    WrongKeySize {
        /// The size found (DER bytes or modulus bytes).
        bytes: usize,
    },
    /// Key generation failed.
    #[error("RSA key generation failed")]
    KeyGeneration,
    /// RSA encryption failed.
    #[error("RSA encryption failed")]
    Encryption,
    /// The ciphertext did not decrypt under this key (wrong key, corrupted or not OAEP).
    #[error("ticket did not decrypt")]
    Decryption,
    /// The ciphertext is not [`ENCRYPTED_TICKET_BYTES`] long.
    #[error("encrypted ticket of {len} bytes, expected {ENCRYPTED_TICKET_BYTES}")]
    WrongCiphertextSize {
        /// Its length.
        len: usize,
    },
}

fn oaep() -> Oaep {
    Oaep::new::<sha1::Sha1>()
}

/// A server's ticket key pair: an RSA-1024 private key and its 162-byte DER public key.
#[derive(Clone)]
pub struct TicketKey {
    private: RsaPrivateKey,
    public_der: [u8; PUBKEY_BYTES],
}

impl core::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TicketKey").finish_non_exhaustive()
    }
}

impl TicketKey {
    /// Generates a fresh RSA-1024 key with exponent 65537. Slow-ish (tens of milliseconds
    /// optimised); a server may generate keys ahead of time.
    pub fn generate<R: CryptoRngCore + ?Sized>(rng: &mut R) -> Result<Self, TicketError> {
        let private = RsaPrivateKey::new_with_exp(rng, KEY_BITS, &rsa::BigUint::from(65537u32))
            .map_err(|_| TicketError::KeyGeneration)?;
        Self::from_private_key(private)
    }

    /// Wraps an existing private key; it must be a 1024-bit RSA key.
    pub fn from_private_key(private: RsaPrivateKey) -> Result<Self, TicketError> {
        if private.size() != ENCRYPTED_TICKET_BYTES {
            return Err(TicketError::WrongKeySize {
                bytes: private.size(),
            });
        }
        let der = private
            .to_public_key()
            .to_public_key_der()
            .map_err(|_| TicketError::InvalidPublicKey)?;
        let public_der: [u8; PUBKEY_BYTES] =
            der.as_bytes()
                .try_into()
                .map_err(|_| TicketError::WrongKeySize {
                    bytes: der.as_bytes().len(),
                })?;
        Ok(Self {
            private,
            public_der,
        })
    }

    /// The public key as sent in the link reply's `pub_key` field.
    pub fn public_key_der(&self) -> &[u8; PUBKEY_BYTES] {
        &self.public_der
    }

    /// Decrypts a 128-byte ticket, giving the raw plaintext (password bytes and the NUL).
    pub fn decrypt<R: CryptoRngCore + ?Sized>(
        &self,
        rng: &mut R,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, TicketError> {
        if ciphertext.len() != ENCRYPTED_TICKET_BYTES {
            return Err(TicketError::WrongCiphertextSize {
                len: ciphertext.len(),
            });
        }
        let mut rng = RngRef(rng);
        self.private
            .decrypt_blinded(&mut rng, oaep(), ciphertext)
            .map_err(|_| TicketError::Decryption)
    }

    /// Decrypts a ticket and returns the password: the plaintext up to its first NUL
    /// (spice-server compares with `strcmp`), or all of it when there is none.
    pub fn decrypt_password<R: CryptoRngCore + ?Sized>(
        &self,
        rng: &mut R,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, TicketError> {
        let mut plain = self.decrypt(rng, ciphertext)?;
        if let Some(nul) = plain.iter().position(|&b| b == 0) {
            plain.truncate(nul);
        }
        Ok(plain)
    }
}

/// Adapts `&mut R` (possibly unsized) to a sized `CryptoRngCore` for the `rsa` API.
struct RngRef<'r, R: CryptoRngCore + ?Sized>(&'r mut R);

impl<R: CryptoRngCore + ?Sized> rand_core::RngCore for RngRef<'_, R> {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.try_fill_bytes(dest)
    }
}

impl<R: CryptoRngCore + ?Sized> rand_core::CryptoRng for RngRef<'_, R> {}

/// Checks a password against the protocol's limits (at most 60 bytes, no NUL).
pub fn check_password(password: &[u8]) -> Result<(), TicketError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(TicketError::PasswordTooLong {
            len: password.len(),
        });
    }
    if password.contains(&0) {
        return Err(TicketError::PasswordContainsNul);
    }
    Ok(())
}

/// Client side: encrypts `password` + NUL under the server's DER public key, giving the
/// 128 bytes to send. An empty password still gives a ticket (the encryption of `"\0"`).
pub fn encrypt_ticket<R: CryptoRngCore + ?Sized>(
    rng: &mut R,
    public_key_der: &[u8],
    password: &[u8],
) -> Result<[u8; ENCRYPTED_TICKET_BYTES], TicketError> {
    check_password(password)?;
    let key = RsaPublicKey::from_public_key_der(public_key_der)
        .map_err(|_| TicketError::InvalidPublicKey)?;
    if key.size() != ENCRYPTED_TICKET_BYTES {
        return Err(TicketError::WrongKeySize { bytes: key.size() });
    }
    let mut plain = Vec::with_capacity(password.len() + 1);
    plain.extend_from_slice(password);
    plain.push(0);
    let mut rng = RngRef(rng);
    let ct = key
        .encrypt(&mut rng, oaep(), &plain)
        .map_err(|_| TicketError::Encryption)?;
    ct.as_slice()
        .try_into()
        .map_err(|_| TicketError::WrongCiphertextSize { len: ct.len() })
}

/// Compares two byte strings in time independent of where they first differ.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
