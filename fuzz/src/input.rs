//! Turning fuzz bytes into structured input, and the properties several targets share.

/// A fuzz input read as options, cut points and a body.
///
/// Layout: byte 0 holds the options (`flags`) and, in its low 3 bits, how many cut points
/// follow; each cut point is 2 bytes (little-endian, taken modulo the body's length + 1);
/// the rest is the body. Inputs too short for their cut points have fewer.
pub struct Cuts<'a> {
    pub flags: u8,
    /// Ascending offsets into `body`, each in `0..=body.len()`.
    pub cuts: Vec<usize>,
    pub body: &'a [u8],
}

pub fn cuts(data: &[u8]) -> Cuts<'_> {
    let Some((&flags, rest)) = data.split_first() else {
        return Cuts {
            flags: 0,
            cuts: Vec::new(),
            body: data,
        };
    };
    let n = usize::from(flags & 7).min(rest.len() / 2);
    let (raw, body) = rest.split_at(n * 2);
    let mut cuts: Vec<usize> = raw
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (body.len() + 1))
        .collect();
    cuts.sort_unstable();
    Cuts { flags, cuts, body }
}

impl Cuts<'_> {
    /// The body as the chunks its cut points delimit (empty chunks included: a read of 0
    /// new bytes must change nothing either).
    pub fn chunks(&self) -> Vec<&[u8]> {
        let mut out = Vec::with_capacity(self.cuts.len() + 1);
        let mut at = 0;
        for &c in &self.cuts {
            out.push(&self.body[at..c]);
            at = c;
        }
        out.push(&self.body[at..]);
        out
    }
}

/// Splits `data` into fields at every 0xFF byte (which never occurs in UTF-8), each read as
/// UTF-8 with replacement characters.
pub fn fields(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0xFF)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

/// Panics when `text` holds what could be an individual number in clear: a run of 12 or
/// more digits (ASCII or full-width), single separators between digits allowed, as people
/// write the number. A naive scan, independent of the masking code it checks. Generation
/// ids (`g20261124-000000-000`: the program's own time stamps, kept readable) are skipped.
pub fn assert_no_clear_number(text: &str, what: &str) {
    let digit = |c: char| c.is_ascii_digit() || ('０'..='９').contains(&c);
    let separator = |c: char| matches!(c, '-' | ' ' | '－' | '‐' | '−' | '　');
    let chars = without_generation_ids(text.chars().collect());
    let mut run = 0;
    for (i, &c) in chars.iter().enumerate() {
        // Escaped when an odd number of backslashes stands before it (`\\` is an escaped
        // backslash, so in `\\\0` the digit is escaped again).
        let backslashes = chars[..i].iter().rev().take_while(|&&b| b == '\\').count();
        let escaped = backslashes % 2 == 1;
        if digit(c) && escaped {
            // `\0`, how a quoted NUL is escaped: not a digit of the input.
            run = 0;
        } else if digit(c) {
            run += 1;
            assert!(
                run < 12,
                "{what} holds a run of 12 digits in clear: {text:?}"
            );
        } else if !(separator(c) && run > 0 && chars.get(i + 1).is_some_and(|&n| digit(n))) {
            run = 0;
        }
    }
}

/// `chars` with every generation id (`g`, 8 digits, `-`, 6 digits, `-`, 3 digits, not inside
/// a word) blanked out.
fn without_generation_ids(mut chars: Vec<char>) -> Vec<char> {
    const SHAPE: &[u8] = b"gdddddddd-dddddd-ddd";
    let fits = |at: &[char]| {
        at.len() >= SHAPE.len()
            && SHAPE.iter().zip(at).all(|(&s, &c)| match s {
                b'd' => c.is_ascii_digit(),
                s => c == s as char,
            })
            && !at.get(SHAPE.len()).is_some_and(|c| c.is_alphanumeric())
    };
    let mut i = 0;
    while i < chars.len() {
        if (i == 0 || !chars[i - 1].is_alphanumeric()) && fits(&chars[i..]) {
            chars[i..i + SHAPE.len()].fill('x');
            i += SHAPE.len();
        } else {
            i += 1;
        }
    }
    chars
}
