//! Compile-time error messages that name numbers: a capacity mistake in a const generic
//! (`Endpoint<PAYLOAD, TOPIC, RX, TX, FRAME>`) fails the build with the values involved and
//! the fix, not only the condition that failed.

/// A message of at most `N` bytes built in a `const` context; longer text is cut.
pub(crate) struct ConstMsg<const N: usize> {
    buf: [u8; N],
    len: usize,
}

// Compile-time evaluation only: an out-of-range index fails the build, never a device.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
impl<const N: usize> ConstMsg<N> {
    pub(crate) const fn new() -> Self {
        ConstMsg {
            buf: [0; N],
            len: 0,
        }
    }

    /// Appends `s`.
    pub(crate) const fn text(mut self, s: &str) -> Self {
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() && self.len < N {
            self.buf[self.len] = bytes[i];
            self.len += 1;
            i += 1;
        }
        self
    }

    /// Appends `v` in decimal.
    pub(crate) const fn num(mut self, mut v: usize) -> Self {
        let mut digits = [0u8; 20];
        let mut k = 0;
        loop {
            digits[k] = b'0' + (v % 10) as u8;
            k += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        while k > 0 && self.len < N {
            k -= 1;
            self.buf[self.len] = digits[k];
            self.len += 1;
        }
        self
    }

    /// The message (cut at a character boundary if it was too long).
    pub(crate) const fn as_str(&self) -> &str {
        let (mut head, _) = self.buf.split_at(self.len);
        loop {
            match core::str::from_utf8(head) {
                Ok(s) => return s,
                Err(_) => head = head.split_at(head.len() - 1).0,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ConstMsg;

    #[test]
    fn builds_text_and_numbers() {
        const M: ConstMsg<64> = ConstMsg::new()
            .text("FRAME is ")
            .num(259)
            .text(", need ")
            .num(0);
        assert_eq!(M.as_str(), "FRAME is 259, need 0");
        const CUT: ConstMsg<5> = ConstMsg::new().text("abc").num(12345);
        assert_eq!(CUT.as_str(), "abc12");
    }
}
