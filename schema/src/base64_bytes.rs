//! [`Base64Bytes`]: raw bytes that travel as a base64 string.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Raw bytes, carried on the wire as a standard base64 string (RFC 4648
/// section 4, with padding). It stands for the schema's `Base64Bytes` def.
///
/// Deserializing fails on a string that is not valid base64: a character
/// outside the standard alphabet, missing or extra padding, or non-zero
/// trailing bits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Base64Bytes(#[cfg_attr(feature = "ts", ts(type = "string"))] pub Vec<u8>);

impl Base64Bytes {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Takes the bytes out.
    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }

    /// The length in bytes (decoded).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for Base64Bytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl From<&[u8]> for Base64Bytes {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

// base64-simd is the workspace's one base64 codec: the server encodes output
// and the SDK decodes it with the same one, on the hot path of streaming.
impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64_simd::STANDARD.encode_to_string(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A visitor, not `Cow<str>` (whose impl always copies into a
        // `String`): the text is decoded straight from the message it was
        // borrowed from, so a 53 MB string costs only its 40 MB of bytes.
        deserializer.deserialize_str(Base64Visitor)
    }
}

/// Decodes a base64 string, borrowed or not, without copying it first.
struct Base64Visitor;

impl serde::de::Visitor<'_> for Base64Visitor {
    type Value = Base64Bytes;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a base64 string")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Base64Bytes, E> {
        base64_simd::STANDARD
            .decode_to_vec(text.as_bytes())
            .map(Base64Bytes)
            .map_err(|error| E::custom(format!("invalid base64: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `text` as a JSON string.
    fn decode(text: &str) -> Option<Vec<u8>> {
        serde_json::from_value::<Base64Bytes>(serde_json::Value::from(text))
            .ok()
            .map(Base64Bytes::into_inner)
    }

    #[test]
    fn encoding_is_standard_and_padded() {
        for (bytes, text) in [
            (&b""[..], ""),
            (b"A", "QQ=="),
            (b"AB", "QUI="),
            (b"ABC", "QUJD"),
            (b"\xfb\xff", "+/8="),
        ] {
            assert_eq!(
                serde_json::to_value(Base64Bytes::from(bytes)).ok(),
                Some(serde_json::Value::from(text))
            );
            assert_eq!(decode(text).as_deref(), Some(bytes), "{text:?}");
        }
    }

    #[test]
    fn decoding_rejects_what_is_not_canonical_standard_base64() {
        for text in [
            // Missing, short or extra padding.
            "QQ",
            "QQ=",
            "QQ===",
            "QUJD====",
            "=",
            "====",
            "Q",
            // Non-zero trailing bits.
            "QR==",
            "QUJ=",
            "QUJDRB==",
            // Padding in the middle, whitespace, the URL-safe alphabet.
            "QQ==QQ==",
            "QUJDRA=A",
            "QUJD\n",
            " QUJD",
            "QU JD",
            "-_8=",
            "not base64!",
        ] {
            assert_eq!(decode(text), None, "{text:?} was accepted");
        }
    }
}
