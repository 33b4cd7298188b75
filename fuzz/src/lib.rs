//! Helpers shared by the fuzz targets: how an input is cut into reads, and
//! small reference checks written independently of the engine's code.

/// Cuts a byte string into the pieces a socket might deliver, from a 16-bit
/// seed taken from the fuzz input.
///
/// Seed 0 delivers one byte per read (the harshest split); otherwise a
/// xorshift generator draws piece lengths up to a maximum that the seed's top
/// bits choose (1 to 4096 bytes), now and then an empty read (a call with no
/// new bytes, which must change nothing).
pub struct Splitter {
    state: u32,
    max: usize,
}

impl Splitter {
    pub fn new(seed: u16) -> Self {
        const MAXES: [usize; 8] = [1, 2, 3, 7, 16, 61, 509, 4096];
        Splitter {
            state: (u32::from(seed) << 8) | 0x9e37_0001,
            max: if seed == 0 {
                1
            } else {
                MAXES[usize::from(seed >> 13)]
            },
        }
    }

    fn next(&mut self) -> u32 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.state = x;
        x
    }

    /// The pieces of `data`, in order; their concatenation is `data`.
    pub fn pieces<'a>(&mut self, mut data: &'a [u8]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let r = self.next();
            let n = if self.max > 1 && r.is_multiple_of(17) {
                0
            } else {
                1 + (r as usize / 17) % self.max
            };
            let (piece, rest) = data.split_at(n.min(data.len()));
            out.push(piece);
            data = rest;
        }
        out
    }
}

/// Strip SP and HTAB at both ends (RFC 9110 OWS).
pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// RFC 9110 §5.6.2 tchar.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A field value as RFC 9110 §5.5 allows it on the wire: no CTL but HTAB.
pub fn is_clean_value(v: &[u8]) -> bool {
    v.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// A deliberately simple reading of a *complete, already accepted* chunked
/// body (RFC 9112 §7.1): hex size, extensions skipped up to CRLF, data, CRLF,
/// ..., last chunk, then the trailer section up to its empty line.
///
/// Returns the body and the trailer section's bytes (its final CRLF
/// included), or `None` if `wire` is not exactly one such body.
pub fn reference_dechunk(wire: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut body = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        let mut size: u64 = 0;
        while let Some(d) = wire.get(i).and_then(|&b| (b as char).to_digit(16)) {
            size = size.checked_mul(16)?.checked_add(u64::from(d))?;
            i += 1;
        }
        if i == start {
            return None;
        }
        if wire.get(i) == Some(&b';') {
            i += wire[i..].iter().position(|&b| b == b'\r')?;
        }
        if wire.get(i..i + 2)? != b"\r\n" {
            return None;
        }
        i += 2;
        if size == 0 {
            break;
        }
        let end = i.checked_add(usize::try_from(size).ok()?)?;
        body.extend_from_slice(wire.get(i..end)?);
        i = end;
        if wire.get(i..i + 2)? != b"\r\n" {
            return None;
        }
        i += 2;
    }
    // Trailer section: field lines, each CRLF-terminated, then CRLF.
    let trailers = &wire[i..];
    let ok = trailers == b"\r\n" || (trailers.len() >= 4 && trailers.ends_with(b"\r\n\r\n"));
    if !ok {
        return None;
    }
    // The empty line must be the first one.
    let first_empty = trailers
        .windows(2)
        .enumerate()
        .find(|&(j, w)| w == b"\r\n" && (j == 0 || trailers[..j].ends_with(b"\r\n")))?;
    if first_empty.0 + 2 != trailers.len() {
        return None;
    }
    Some((body, trailers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_covers_the_input() {
        for seed in [0u16, 1, 0x2000, 0xffff, 12345] {
            let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
            let pieces = Splitter::new(seed).pieces(&data);
            assert_eq!(pieces.concat(), data);
        }
    }

    #[test]
    fn reference_dechunk_reads_bodies() {
        assert_eq!(
            reference_dechunk(b"5;a=b\r\nhello\r\n0\r\nX: 1\r\n\r\n"),
            Some((b"hello".to_vec(), &b"X: 1\r\n\r\n"[..]))
        );
        assert_eq!(
            reference_dechunk(b"0\r\n\r\n"),
            Some((Vec::new(), &b"\r\n"[..]))
        );
        assert_eq!(reference_dechunk(b"0\r\n\r\nX"), None);
    }
}
