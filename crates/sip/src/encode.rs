//! The [`Encode`] trait: how every typed value writes itself onto the wire.

use bytes::Bytes;

/// A value that serializes to the exact bytes of its wire form.
pub trait Encode {
    /// Append the wire form to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// The wire form in a new buffer.
    fn to_bytes(&self) -> Bytes {
        let mut v = Vec::new();
        self.encode(&mut v);
        Bytes::from(v)
    }
}
