//! A crafted index: fields of a valid generation changed to hostile values (every header,
//! section-table, insurer-table and segment-header field; record fields, string offsets,
//! directory slots, person entries, refs and buckets; heap and FST bytes) with every checksum
//! recomputed after the change, so only the reader's own checks stand between the bytes and a
//! panic. Opening, verifying and answering must give an error or an answer, never a panic, an
//! overflow or a read outside the file.

use proptest::prelude::*;
use shikaku::domain::*;
use shikaku::format::*;
use shikaku::index::{Index, IndexFiles};
use shikaku::nightly::{build_in_memory_with_kohi, InsurerRows};
use shikaku::query::{write_answer, CardQuery, Lookup, PersonQuery};
use std::ops::Range;
use std::sync::OnceLock;

const TODAY: &str = "2026-11-24";

fn d(s: &str) -> Date {
    Date::parse(s).unwrap()
}

/// Cards of the sample: (insurer, symbol, number); the kana symbol's key is longer than the
/// card directory holds, so its lookups walk the FST.
const CARDS: [(&str, &str, &str); 5] = [
    ("33120015", "12", "3456"),
    ("33120015", "12", "3457"),
    ("06130017", "", "77"),
    ("06130017", "アイウエオカキ", "1"),
    ("01130012", "9", "1"),
];
const PERSONS: [u64; 4] = [12345678901, 22345678901, 32345678901, 42345678901];

/// Three insurers; persons with records in two of them, lost and current qualifications.
fn sample() -> &'static IndexFiles<Vec<u8>> {
    static SAMPLE: OnceLock<IndexFiles<Vec<u8>>> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let rec = |card: usize, branch: u8, person: u64, qual: &str, disq: Option<&str>| {
            let (insurer, symbol, number) = CARDS[card];
            Record {
                insurer: InsurerNumber::parse(insurer).unwrap(),
                symbol: symbol.into(),
                number: number.into(),
                branch: Branch::new(branch).unwrap(),
                individual_number: Some(IndividualNumber::from_first11(person)),
                name: "山田 太郎".into(),
                name_kana: "ヤマダ タロウ".into(),
                sex: Sex::Male,
                birthdate: d("1980-01-23"),
                relationship: Relationship::Insured,
                qualification_date: d(qual),
                disqualification_date: disq.map(d),
                reason_of_loss: disq.map(|_| ReasonOfLoss::OtherInsurance),
                copay_ratio: CopayRatio::new(30).unwrap(),
                limit_category: Some(LimitCategory::A01),
            }
        };
        let insurer = |number: &str, kind, rows: Vec<(Record, u32)>| InsurerRows {
            number: InsurerNumber::parse(number).unwrap(),
            name: format!("保険者{number}"),
            kind,
            snapshot_date: d("2026-11-01"),
            file: format!("{number}/20261101.csv"),
            rows,
            persons: Vec::new(),
        };
        let insurers = vec![
            insurer(
                "01130012",
                InsurerKind::Kyokai,
                vec![(rec(4, 0, PERSONS[3], "2020-01-01", None), 2)],
            ),
            insurer(
                "06130017",
                InsurerKind::Kumiai,
                vec![
                    (rec(2, 0, PERSONS[1], "2016-01-01", None), 2),
                    (rec(3, 1, PERSONS[2], "2001-01-01", Some("2019-01-01")), 3),
                    (rec(3, 2, PERSONS[2], "2019-01-01", None), 4),
                ],
            ),
            insurer(
                "33120015",
                InsurerKind::Kyosai,
                vec![
                    (rec(0, 0, PERSONS[0], "2015-04-01", None), 2),
                    (rec(1, 1, PERSONS[1], "2010-04-01", Some("2016-01-01")), 3),
                    (rec(1, 0, PERSONS[3], "2010-04-01", Some("2020-01-01")), 4),
                ],
            ),
        ];
        let kohi = kohi_sample();
        build_in_memory_with_kohi(insurers, &kohi, &PersonKey::demo(), d(TODAY), "g-hostile")
            .unwrap()
    })
}

/// Two payers (難病 54 with a check-digit recipient, a local program 88), certificates with
/// and without a person, institutions, limits and an end date.
const PAYERS: [&str; 2] = ["5413601", "8813001"];
const RECIPIENTS: [&str; 3] = ["0123455", "007", "A-1"];

fn kohi_sample() -> EncodedKohi {
    let payer = |i: usize| PayerNumber::from_body(PAYERS[i]).unwrap();
    let cert = |p: usize, recipient: &str, person: Option<u64>, to: Option<&str>| Certificate {
        payer: payer(p),
        recipient: recipient.into(),
        individual_number: person.map(IndividualNumber::from_first11),
        name: "山田 太郎".into(),
        name_kana: "ヤマダ タロウ".into(),
        sex: person.map(|_| Sex::Male),
        birthdate: d("1980-01-23"),
        valid_from: d("2026-04-01"),
        valid_to: to.map(d),
        copay_limit_yen: person.map(|_| 10_000),
        institutions: if person.is_some() {
            vec![InstitutionCode::parse("0110113719").unwrap()]
        } else {
            Vec::new()
        },
    };
    let certs = [
        cert(0, RECIPIENTS[0], Some(PERSONS[0]), Some("2027-03-31")),
        cert(0, RECIPIENTS[0], Some(PERSONS[0]), Some("2026-04-30")),
        cert(1, RECIPIENTS[1], Some(PERSONS[1]), None),
        cert(1, RECIPIENTS[2], None, None),
    ];
    let key = PersonKey::demo();
    let inputs: Vec<CertificateInput<'_>> = certs
        .iter()
        .map(|c| CertificateInput {
            certificate: c,
            person: c.individual_number.map(|n| key.hash(&n)),
            identity_unverified: false,
        })
        .collect();
    let names = [(payer(0), "難病"), (payer(1), "子ども医療費助成")];
    encode_kohi(&names, &inputs).unwrap()
}

/// The fst crate panics on some crafted bytes, which `verify` catches; the default hook would
/// print (and, under RUST_BACKTRACE, symbolize) each one, which made this test take minutes.
/// Panics elsewhere (a failed assertion, a reader bug) still go to the default hook.
fn quiet_panics() {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_fst = info.location().is_some_and(|l| {
                let file = l.file().replace('\\', "/");
                file.contains("/fst-") || file.starts_with("src/raw/")
            });
            if !in_fst {
                default(info);
            }
        }));
    });
}

/// Where a field lies: file 0 is the main file, file `i` the segment file of insurer `i - 1`.
#[derive(Debug, Clone)]
struct Field {
    what: String,
    file: usize,
    bytes: Range<usize>,
}

/// The sections of a valid main file, from its section table: kind → (offset, length).
fn sections(main: &[u8]) -> Vec<(u32, usize, usize)> {
    let (count, at) = (u32_at(main, 88) as usize, u64_at(main, 96) as usize);
    (0..count)
        .map(|i| {
            let e = SectionEntry::decode(&main[at + i * SECTION_ENTRY_BYTES..]);
            (e.kind, e.offset as usize, e.bytes as usize)
        })
        .collect()
}

fn section(main: &[u8], kind: SectionKind) -> (usize, usize) {
    let (_, at, len) = sections(main)
        .into_iter()
        .find(|s| s.0 == kind as u32)
        .unwrap();
    (at, len)
}

/// Every field of the sample, named, with its bytes.
fn fields() -> &'static [Field] {
    static FIELDS: OnceLock<Vec<Field>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        let files = sample();
        let main = &files.main;
        let mut out = Vec::new();
        let mut add = |what: String, file: usize, base: usize, layout: &[(usize, usize)]| {
            for &(at, len) in layout {
                out.push(Field {
                    what: format!("{what} byte {at}"),
                    file,
                    bytes: base + at..base + at + len,
                });
            }
        };
        let header: Vec<(usize, usize)> = [(8, 4), (12, 4), (16, 8)]
            .into_iter()
            .chain((24..56).step_by(8).map(|a| (a, 8)))
            .chain([
                (56, 4),
                (60, 4),
                (64, 8),
                (72, 8),
                (80, 8),
                (88, 4),
                (92, 4),
            ])
            .chain([(96, 8), (104, 8), (112, 8), (120, 8)])
            .collect();
        add("header".into(), 0, 0, &header);
        let table = u64_at(main, 96) as usize;
        for i in 0..sections(main).len() {
            let entry = [(0, 4), (4, 4), (8, 8), (16, 8), (24, 8)];
            add(format!("section entry {i}"), 0, table + i * 32, &entry);
        }
        let (ins, ins_len) = section(main, SectionKind::Insurers);
        let insurer = [
            (0, 8),
            (8, 1),
            (9, 3),
            (12, 4),
            (16, 4),
            (20, 4),
            (24, 8),
            (32, 4),
            (36, 4),
            (40, 4),
            (44, 4),
            (48, 8),
            (56, 4),
            (60, 4),
        ];
        for i in 0..ins_len / INSURER_ENTRY_BYTES {
            add(format!("insurer {i}"), 0, ins + i * 64, &insurer);
        }
        let (strings, strings_len) = section(main, SectionKind::Strings);
        for at in (0..strings_len).step_by(4) {
            add("strings".into(), 0, strings + at, &[(0, 1)]);
        }
        let (persons, persons_len) = section(main, SectionKind::Persons);
        let person = [(0, 8), (8, 8), (16, 4), (20, 2), (22, 2)];
        for i in 0..persons_len / PERSON_ENTRY_BYTES {
            add(format!("person {i}"), 0, persons + i * 24, &person);
        }
        let (refs, refs_len) = section(main, SectionKind::PersonRefs);
        for i in 0..refs_len / PERSON_REF_BYTES {
            add(
                format!("person ref {i}"),
                0,
                refs + i * 8,
                &[(0, 4), (4, 4)],
            );
        }
        let (buckets, buckets_len) = section(main, SectionKind::PersonBuckets);
        for i in 0..buckets_len / 4 {
            add(format!("person bucket {i}"), 0, buckets + i * 4, &[(0, 4)]);
        }
        let (payers, payers_len) = section(main, SectionKind::Payers);
        let payer = [(0, 8), (8, 4), (12, 4), (16, 4), (20, 4)];
        for i in 0..payers_len / PAYER_ENTRY_BYTES {
            add(
                format!("payer {i}"),
                0,
                payers + i * PAYER_ENTRY_BYTES,
                &payer,
            );
        }
        let (certs, certs_len) = section(main, SectionKind::Certificates);
        let certificate = [
            (0, 8),
            (8, 8),
            (16, 4),
            (20, 1),
            (21, 1),
            (22, 2),
            (24, 2),
            (26, 1),
            (27, 1),
            (28, 4),
            (32, 4),
            (36, 4),
            (40, 4),
            (44, 4),
        ];
        for i in 0..certs_len / CERTIFICATE_BYTES {
            add(
                format!("certificate {i}"),
                0,
                certs + i * CERTIFICATE_BYTES,
                &certificate,
            );
        }
        let (cstrings, cstrings_len) = section(main, SectionKind::CertificateStrings);
        for at in (0..cstrings_len).step_by(3) {
            add("certificate strings".into(), 0, cstrings + at, &[(0, 1)]);
        }
        let (cpersons, cpersons_len) = section(main, SectionKind::CertificatePersons);
        for i in 0..cpersons_len / CERT_PERSON_BYTES {
            add(
                format!("certificate person {i}"),
                0,
                cpersons + i * CERT_PERSON_BYTES,
                &[(0, 8), (8, 8), (16, 4)],
            );
        }
        let record: Vec<(usize, usize)> = [(0, 8), (8, 8), (16, 4), (20, 1), (21, 1), (22, 2)]
            .into_iter()
            .chain((24..36).map(|a| (a, if a == 24 { 2 } else { 1 })))
            .filter(|&(a, _)| a != 25)
            .chain([(36, 4), (40, 4), (44, 4)])
            .collect();
        let segment_header = [(0, 8), (8, 4), (12, 4), (16, 8), (24, 8)];
        for (i, seg) in files.segments.iter().enumerate() {
            let e = InsurerEntry::decode(&main[ins + i * 64..ins + (i + 1) * 64]).unwrap();
            let file = i + 1;
            add(format!("segment {i} header"), file, 0, &segment_header);
            for r in 0..e.record_count as usize {
                add(
                    format!("segment {i} record {r}"),
                    file,
                    32 + r * 48,
                    &record,
                );
            }
            let (fst, heap, dir) = (
                e.fst_offset() as usize,
                e.heap_offset() as usize,
                e.directory_offset() as usize,
            );
            for at in fst..fst + e.fst_bytes as usize {
                add(format!("segment {i} fst"), file, at, &[(0, 1)]);
            }
            for at in heap..heap + e.heap_bytes as usize {
                add(format!("segment {i} heap"), file, at, &[(0, 1)]);
            }
            let slot = [(0, 1), (1, 8), (9, 8), (18, 4), (22, 2)];
            for s in 0..(seg.len() - dir) / DIRECTORY_SLOT_BYTES {
                add(format!("segment {i} slot {s}"), file, dir + s * 24, &slot);
            }
        }
        out
    })
}

impl Field {
    /// A byte of text or of the FST rather than a field of a table.
    fn is_byte(&self) -> bool {
        ["fst", "heap", "strings"]
            .iter()
            .any(|w| self.what.contains(&format!("{w} byte")))
    }
}

fn file_mut(files: &mut IndexFiles<Vec<u8>>, file: usize) -> &mut Vec<u8> {
    match file {
        0 => &mut files.main,
        i => &mut files.segments[i - 1],
    }
}

/// Writes `value` over `bytes` of `b`, unless they overlap `kept` (the field changed on
/// purpose, which recomputing must not undo).
fn put(b: &mut [u8], bytes: Range<usize>, value: u64, kept: Option<&Range<usize>>) {
    if bytes.end > b.len() || kept.is_some_and(|k| k.start < bytes.end && bytes.start < k.end) {
        return;
    }
    b[bytes].copy_from_slice(&value.to_le_bytes());
}

/// Recomputes every checksum the format has, from the leaves up, trusting the (possibly
/// changed) offsets only as far as they lie inside the files: segment bodies (in the segment
/// header and the insurer table), every section, the section table, the header.
fn reseal(files: &mut IndexFiles<Vec<u8>>, changed: &Field) {
    let kept = |file: usize| (changed.file == file).then_some(&changed.bytes);
    let main_len = files.main.len();
    let table_at = u64_at(&files.main, 96) as usize;
    let count = u32_at(&files.main, 88) as usize;
    let table = table_at..table_at.saturating_add(count.saturating_mul(32));
    // Only the entries inside the file: a changed count may claim four billion of them,
    // which walking one by one made this test run for hours.
    let inside = count.min(main_len.saturating_sub(table_at) / 32);
    let entries = |main: &[u8]| -> Vec<(usize, u32, Range<usize>)> {
        (0..inside)
            .map(|i| table.start + i * 32)
            .map(|at| {
                let e = SectionEntry::decode(&main[at..at + 32]);
                let start = e.offset.min(main_len as u64) as usize;
                let end = e.offset.saturating_add(e.bytes).min(main_len as u64) as usize;
                (at, e.kind, start..end.max(start))
            })
            .collect()
    };
    let insurers = entries(&files.main)
        .into_iter()
        .find(|e| e.1 == SectionKind::Insurers as u32)
        .map(|e| e.2);
    for i in 0..files.segments.len() {
        let seg = &mut files.segments[i];
        if seg.len() < 32 {
            continue;
        }
        let sum = xxh3(&seg[32..]);
        put(seg, 24..32, sum, kept(i + 1));
        if let Some(ins) = &insurers {
            let at = ins.start + i * 64 + 48;
            if at + 8 <= ins.end {
                put(&mut files.main, at..at + 8, sum, kept(0));
            }
        }
    }
    for (at, _, bytes) in entries(&files.main) {
        let sum = xxh3(&files.main[bytes]);
        put(&mut files.main, at + 24..at + 32, sum, kept(0));
    }
    if table.end <= main_len {
        let sum = xxh3(&files.main[table]);
        put(&mut files.main, 104..112, sum, kept(0));
    }
    let sum = xxh3(&files.main[..120]);
    put(&mut files.main, 120..128, sum, kept(0));
}

/// Every query the sample answers, and every record field, read through the index; the
/// answers must be UTF-8 JSON lines.
fn exercise<B: AsRef<[u8]>>(index: &Index<B>) -> String {
    let mut out = Vec::new();
    let date = d(TODAY);
    for (insurer, symbol, number) in CARDS.iter().chain([&("33120015", "12", "9999")]) {
        let q = CardQuery {
            insurer: InsurerNumber::parse(insurer).unwrap(),
            symbol: (*symbol).into(),
            number: (*number).into(),
            branch: None,
            birthdate: d("1980-01-23"),
            date: Some(date),
            limit_consent: true,
        };
        write_answer(&mut out, &index.card(&q, date), date, "g", true);
        out.push(b'\n');
    }
    for p in PERSONS.into_iter().chain([52345678901]) {
        let q = PersonQuery {
            individual_number: IndividualNumber::from_first11(p),
            date: None,
            limit_consent: true,
        };
        write_answer(&mut out, &index.person(&q, date), date, "g", true);
        out.push(b'\n');
    }
    for r in index.all_records() {
        let _ = (r.entry(), r.person(), r.line(), r.covers(date));
        let _ = (r.symbol(), r.number(), r.name(), r.name_kana(), r.branch());
        let _ = (
            r.birthdate().ymd(),
            r.disqualification_date().map(Date::ymd),
        );
        let _ = (r.reason_of_loss(), r.limit_category(), r.name_kana_utf8());
    }
    for p in index.person_table() {
        let _ = index.person_records(&p).count();
    }
    exercise_kohi(index);
    let _ = index.total_bytes();
    String::from_utf8(out).expect("answers are UTF-8")
}

/// Every certificate, payer and lookup of the certificate sections.
fn exercise_kohi<B: AsRef<[u8]>>(index: &Index<B>) {
    let institution = InstitutionCode::parse("0110113719").unwrap();
    for body in PAYERS {
        let Some(p) = index.payer(PayerNumber::from_body(body).unwrap()) else {
            continue;
        };
        for r in RECIPIENTS.iter().chain(&["", "9999999"]) {
            for c in index.certificates_of(p, r) {
                let _ = (c.covers(d(TODAY)), c.admits(institution));
            }
        }
    }
    for i in 0..index.header().certificate_count.min(64) as usize {
        if let Some(c) = index.certificate(i) {
            let _ = (c.recipient(), c.name(), c.name_kana(), c.sex(), c.person());
            let _ = (c.birthdate().ymd(), c.valid_to().map(Date::ymd));
            let _ = (c.copay_limit_yen(), c.institutions().count());
            let _ = (c.payer().name.len(), c.identity_unverified());
        }
    }
    for p in PERSONS {
        let hash = PersonKey::demo().hash(&IndividualNumber::from_first11(p));
        let _ = index.person_certificates(hash).count();
    }
}

/// Opens the changed files, answers from them unverified (what `open` checked must keep every
/// read in bounds), verifies, and answers again.
fn check(files: IndexFiles<Vec<u8>>) -> Result<(), FormatError> {
    let index = Index::open(files, PersonKey::demo())?;
    exercise(&index);
    index.verify()?;
    exercise(&index);
    Ok(())
}

/// Values worth trying in a field of `width` bytes whose value is `old`, for a file of `len`.
fn hostile(old: u64, width: usize, len: u64, pick: usize, random: u64) -> u64 {
    let max = if width >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    };
    let candidates = [
        0,
        1,
        max,
        max - 1,
        max / 2 + 1,
        old.wrapping_add(1),
        old.wrapping_sub(1),
        old.wrapping_add(8),
        old ^ (1 << (random % (8 * width as u64))),
        len,
        len + 1,
        len - 1,
        7,
        32,
        48,
        128,
        u64::from(u32::MAX),
        i32::MIN as u32 as u64,
        random,
    ];
    candidates[pick % candidates.len()] & max
}

fn mutate(files: &mut IndexFiles<Vec<u8>>, field: &Field, pick: usize, random: u64) {
    let b = file_mut(files, field.file);
    let len = b.len() as u64;
    let width = field.bytes.len().min(8);
    let mut old = [0u8; 8];
    old[..width].copy_from_slice(&b[field.bytes.start..field.bytes.start + width]);
    let value = hostile(u64::from_le_bytes(old), width, len, pick, random);
    b[field.bytes.start..field.bytes.start + width].copy_from_slice(&value.to_le_bytes()[..width]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// One or two fields changed, every checksum recomputed: an error or an answer.
    #[test]
    fn crafted_fields_give_an_error_or_an_answer(
        changes in prop::collection::vec(
            (any::<prop::sample::Index>(), 0usize..64, any::<u64>()), 1..3),
    ) {
        quiet_panics();
        let mut files = sample().clone();
        let all = fields();
        for (field, pick, random) in &changes {
            let field = &all[field.index(all.len())];
            mutate(&mut files, field, *pick, *random);
            reseal(&mut files, field);
        }
        let _ = check(files);
    }
}

/// Every field, each hostile value, one at a time: counted, so the test shows it reaches
/// past `open` (a reader that refused everything would pass the property trivially).
#[test]
fn every_field_every_hostile_value() {
    quiet_panics();
    let (mut opened, mut verified, mut refused) = (0, 0, 0);
    for field in fields() {
        // Table fields get every hostile value; single bytes of text or FST a few.
        let picks: &[usize] = if field.is_byte() {
            &[0, 2, 8, 18]
        } else {
            &[
                0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
            ]
        };
        for &pick in picks {
            let mut files = sample().clone();
            mutate(&mut files, field, pick, 0x9E37_79B9_7F4A_7C15);
            reseal(&mut files, field);
            match Index::open(files.clone(), PersonKey::demo()) {
                Err(_) => refused += 1,
                Ok(_) => {
                    opened += 1;
                    if check(files).is_ok() {
                        verified += 1;
                    }
                }
            }
        }
    }
    assert!(opened > 1000, "opened {opened}, refused {refused}");
    assert!(refused > 1000, "opened {opened}, refused {refused}");
    assert!(verified > 100, "verified {verified}");
}

fn entry_of(files: &IndexFiles<Vec<u8>>, kind: SectionKind) -> usize {
    let table = u64_at(&files.main, 96) as usize;
    let i = sections(&files.main)
        .iter()
        .position(|s| s.0 == kind as u32)
        .unwrap();
    table + i * SECTION_ENTRY_BYTES
}

fn open_error(files: IndexFiles<Vec<u8>>) -> String {
    match Index::open(files, PersonKey::demo()) {
        Ok(_) => panic!("a crafted index was opened"),
        Err(e) => e.to_string(),
    }
}

/// The case found from outside: a section-table entry of an unknown kind, or one past the end
/// of the file, with the table and header checksums recomputed, opened and then made
/// `verify` panic. Both are refused at open, naming the entry and the field.
#[test]
fn unknown_or_outlying_sections_are_refused_at_open() {
    let table_field = |at: usize, len: usize| Field {
        what: "section entry".into(),
        file: 0,
        bytes: at..at + len,
    };
    let mut files = sample().clone();
    let at = entry_of(&files, SectionKind::Strings);
    files.main[at..at + 4].copy_from_slice(&11u32.to_le_bytes());
    reseal(&mut files, &table_field(at, 4));
    let err = open_error(files);
    assert!(err.contains("kind 11 is not a section kind"), "{err}");

    for (field, value) in [
        (8, u64::MAX - 7),
        (8, 1 << 40),
        (16, u64::MAX),
        (16, 1 << 40),
    ] {
        let mut files = sample().clone();
        let at = entry_of(&files, SectionKind::PersonRefs);
        files.main[at + field..at + field + 8].copy_from_slice(&value.to_le_bytes());
        reseal(&mut files, &table_field(at + field, 8));
        let err = open_error(files);
        let name = if field == 8 { "offset" } else { "length" };
        assert!(err.contains("section table entry"), "{err}");
        assert!(err.contains(name) || err.contains("length"), "{err}");
    }
}
