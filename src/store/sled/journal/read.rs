//! Reading segments back: their whole records in order, a record that a crash cut short at
//! the end (torn: never acknowledged, so nothing is lost), and damage — bytes that hold no
//! readable record, with readable records after them or in a segment the journal had
//! already moved on from.
//!
//! Reading does not stop at damage: it looks for the next whole record (its checksum and
//! writes agree, and its number follows), so one bad record costs that record, not every
//! record after it. A segment found damaged is copied aside (`corrupt/` beside it) before
//! anything else is done with it; what it cost is told in record numbers and byte ranges.
//!
//! This module must not change a segment: the journal cuts torn tails, and retires damaged
//! segments with the others once sled holds what could be read.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::{Op, Record, Segment};

/// The smallest record: its length and checksum, then a payload of a sequence number and a
/// count of writes.
const MIN_RECORD: usize = 8 + 12;

/// Reads a little-endian u32 at `at`.
fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Reads a little-endian u64 at `at`.
fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// A record's payload: its sequence number and writes (see `encode`).
fn decode(payload: &[u8]) -> Option<Record> {
    let seq = u64_at(payload, 0)?;
    let count = u32_at(payload, 8)? as usize;
    let mut at = 12;
    let mut ops = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let tag = *payload.get(at)?;
        let klen = u32_at(payload, at + 1)? as usize;
        let key = payload.get(at + 5..at + 5 + klen)?.to_vec();
        at += 5 + klen;
        let vlen = u32_at(payload, at)? as usize;
        let value = payload.get(at + 4..at + 4 + vlen)?.to_vec();
        at += 4 + vlen;
        ops.push(match tag {
            1 => Op::Insert(key, value),
            2 => Op::Remove(key),
            _ => return None,
        });
    }
    (at == payload.len()).then_some((seq, ops))
}

/// The whole record at `at`, numbered after `after`, and where the next one starts.
fn record_at(bytes: &[u8], at: usize, after: u64) -> Option<(Record, usize)> {
    let len = u32_at(bytes, at)? as usize;
    let crc = u32_at(bytes, at + 4)?;
    let end = (at + 8).checked_add(len)?;
    let payload = bytes.get(at + 8..end)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let record = decode(payload)?;
    (record.0 > after).then_some((record, end))
}

/// The next whole record after damage that begins at `from`: where it starts and its
/// number. It must be numbered after `after`, and no further on than the damaged bytes
/// could have held (each record takes at least [`MIN_RECORD`] bytes), so that data which
/// happens to look like a record is not taken for one.
fn resync(bytes: &[u8], from: usize, after: u64) -> Option<(usize, u64)> {
    let end = bytes.len().checked_sub(MIN_RECORD)?;
    (from + 1..=end).find_map(|at| {
        let seq = u64_at(bytes, at + 8)?;
        let most = after + 1 + ((at - from) / MIN_RECORD) as u64;
        if seq <= after || seq > most {
            return None;
        }
        record_at(bytes, at, after).map(|_| (at, seq))
    })
}

/// Whether what follows the last readable record of the newest segment is a record that a
/// crash cut short (its sync had not returned, so it was never acknowledged): fewer bytes
/// than its length says — unless the bytes there check whole against its checksum, which
/// means its length is what is damaged — or zeros (space the file system had allocated but
/// not written).
fn cut_short(tail: &[u8]) -> bool {
    if tail.iter().all(|b| *b == 0) {
        return true;
    }
    let (Some(len), Some(crc)) = (u32_at(tail, 0), u32_at(tail, 4)) else {
        return true;
    };
    tail.len() < 8 + len as usize && crc32fast::hash(&tail[8..]) != crc
}

/// Bytes of a segment that hold no readable record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// Where, in bytes from the start of the segment.
    pub bytes: Range<u64>,
    /// The first record number they held.
    pub first: u64,
    /// The last one; None when nothing after the damage tells (it runs to the end of the
    /// newest segment). Below `first` when they held no record.
    pub last: Option<u64>,
}

/// What reading one segment found.
#[derive(Debug, Default)]
struct Scan {
    records: Vec<Record>,
    gaps: Vec<Gap>,
    /// How many of the records come after the first gap.
    read_after: usize,
    /// Where a record that a crash cut short begins (it runs to the end).
    torn: Option<u64>,
}

impl Scan {
    /// The highest record number the segment is known to have held, read or damaged.
    fn highest(&self) -> Option<u64> {
        let read = self.records.last().map(|(seq, _)| *seq);
        let damaged = self.gaps.iter().map(|g| g.last.unwrap_or(g.first));
        read.into_iter().chain(damaged).max()
    }
}

/// Reads a segment whose first record is numbered `first_seq`; `next_first` is the first
/// record number of the next segment (None for the newest).
fn scan(bytes: &[u8], first_seq: u64, next_first: Option<u64>) -> Scan {
    let mut found = Scan::default();
    let mut at = 0;
    let mut last = first_seq.saturating_sub(1);
    while at < bytes.len() {
        if let Some((record, next)) = record_at(bytes, at, last) {
            last = record.0;
            found.read_after += usize::from(!found.gaps.is_empty());
            found.records.push(record);
            at = next;
            continue;
        }
        if let Some((next, seq)) = resync(bytes, at, last) {
            found.gaps.push(Gap {
                bytes: at as u64..next as u64,
                first: last + 1,
                last: Some(seq - 1),
            });
            at = next;
            continue;
        }
        let torn = match next_first {
            // The journal moved on numbering right after the last record read: what follows
            // it is a write that failed (and was refused), not a record.
            Some(next) => next <= last + 1,
            None => cut_short(&bytes[at..]),
        };
        if torn {
            found.torn = Some(at as u64);
        } else {
            found.gaps.push(Gap {
                bytes: at as u64..bytes.len() as u64,
                first: last + 1,
                last: next_first.map(|next| next - 1),
            });
        }
        break;
    }
    found
}

/// A segment found damaged, copied aside before anything else was done with it.
#[derive(Debug, Clone)]
pub struct Damaged {
    /// The segment.
    pub segment: PathBuf,
    /// Its size.
    pub size: u64,
    /// Its damaged bytes, in order.
    pub gaps: Vec<Gap>,
    /// Records read after the first damaged byte (recovered like any other).
    pub read_after: usize,
    /// Records up to this one are in sled already: no damage loses them.
    pub applied: u64,
    /// The copy, byte for byte as the segment was found.
    pub kept: PathBuf,
}

impl Damaged {
    /// The records lost (first, last; None: and any after it): held by the damaged bytes
    /// and not in sled.
    pub fn lost(&self) -> Vec<(u64, Option<u64>)> {
        self.gaps
            .iter()
            .map(|g| (g.first.max(self.applied + 1), g.last))
            .filter(|(first, last)| last.is_none_or(|last| last >= *first))
            .collect()
    }
}

/// "record 7", "records 7 to 9", "record 7 and any after it".
fn numbers(first: u64, last: Option<u64>) -> String {
    match last {
        Some(last) if last == first => format!("record {first}"),
        Some(last) => format!("records {first} to {last}"),
        None => format!("record {first} and any after it"),
    }
}

impl fmt::Display for Damaged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "journal segment {} ({} bytes) is damaged: ",
            self.segment.display(),
            self.size
        )?;
        for (i, gap) in self.gaps.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let held = numbers(gap.first, gap.last);
            let bytes = format!("bytes {}..{}", gap.bytes.start, gap.bytes.end);
            let lost_first = gap.first.max(self.applied + 1);
            match gap.last {
                Some(last) if last < gap.first => write!(f, "{bytes} held no record")?,
                Some(last) if last < lost_first => {
                    write!(f, "{bytes} held {held}, which sled holds already")?
                }
                _ if lost_first == gap.first => write!(f, "{bytes} held {held}, lost")?,
                _ => write!(
                    f,
                    "{bytes} held {held}: {} lost (sled holds the others)",
                    numbers(lost_first, gap.last)
                )?,
            }
        }
        write!(
            f,
            "; {} records after the damage were read and recovered; the damaged file is kept, unchanged, at {}",
            self.read_after,
            self.kept.display()
        )?;
        if !self.lost().is_empty() {
            // sled also saves its writes on its own timer: it may hold what the journal
            // cannot give back.
            f.write_str(
                ". A lost record (an accepted event, an attempt's result, a replay, a purge) \
                 cannot be applied again: it survives only if sled had already saved it itself",
            )?;
        }
        Ok(())
    }
}

/// A record that a crash cut short at the end of a segment (never acknowledged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torn {
    /// The segment.
    pub segment: PathBuf,
    /// Its bytes, to the end of the segment.
    pub bytes: Range<u64>,
}

impl fmt::Display for Torn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "journal segment {} ends in a write that a crash cut short (bytes {}..{}, never acknowledged)",
            self.segment.display(),
            self.bytes.start,
            self.bytes.end
        )
    }
}

/// What reading the segments found.
#[derive(Debug, Default)]
pub(super) struct Reading {
    /// Every readable record after `applied`, in order.
    pub records: Vec<Record>,
    /// Damaged segments, each copied aside.
    pub damaged: Vec<Damaged>,
    /// Torn tails of segments that are not damaged.
    pub torn: Vec<Torn>,
    /// The highest record number any segment is known to have held (at least `applied`).
    pub last: u64,
}

/// Reads `segments` (oldest first; the last is the newest) after `applied`, the last record
/// sled holds. A damaged segment is copied aside first; reading it fails if the copy
/// cannot be made, so that nothing is ever done with damage whose evidence is not kept.
pub(super) fn segments(segments: &[Segment], applied: u64) -> io::Result<Reading> {
    let mut reading = Reading {
        last: applied,
        ..Reading::default()
    };
    for (i, segment) in segments.iter().enumerate() {
        let mut bytes = Vec::new();
        File::open(&segment.path)?.read_to_end(&mut bytes)?;
        let next_first = segments.get(i + 1).map(|s| s.first_seq);
        let found = scan(&bytes, segment.first_seq, next_first);
        reading.last = reading.last.max(found.highest().unwrap_or(0));
        if !found.gaps.is_empty() {
            let kept = keep_aside(&segment.path, &bytes).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "journal segment {} is damaged and cannot be copied aside before it is read: {e}",
                        segment.path.display()
                    ),
                )
            })?;
            reading.damaged.push(Damaged {
                segment: segment.path.clone(),
                size: bytes.len() as u64,
                gaps: found.gaps,
                read_after: found.read_after,
                applied,
                kept,
            });
        } else if let Some(start) = found.torn {
            reading.torn.push(Torn {
                segment: segment.path.clone(),
                bytes: start..bytes.len() as u64,
            });
        }
        let after = found.records.into_iter().filter(|(seq, _)| *seq > applied);
        reading.records.extend(after);
    }
    Ok(reading)
}

/// Copies a damaged segment's `bytes` into `corrupt/` beside it, under a name no earlier
/// copy has (`<segment>.<UTC time>`, then `.1`, `.2` …), and makes the copy durable.
fn keep_aside(segment: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let journal = segment.parent().unwrap_or(Path::new("."));
    let dir = journal.join("corrupt");
    std::fs::create_dir_all(&dir)?;
    let name = segment
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut n = 0;
    let (path, mut file) = loop {
        let path = match n {
            0 => dir.join(format!("{name}.{stamp}")),
            n => dir.join(format!("{name}.{stamp}.{n}")),
        };
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => break (path, file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(e),
        }
    };
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| File::open(&dir)?.sync_all())
        .and_then(|()| File::open(journal)?.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::super::encode;
    use super::*;

    fn ops(n: u8) -> Vec<Op> {
        vec![Op::Insert(vec![b'k', n], vec![n; 40])]
    }

    /// Records `first..=last`, and where each starts.
    fn records(first: u64, last: u64) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for seq in first..=last {
            starts.push(bytes.len());
            bytes.extend(encode(seq, &ops(seq as u8)));
        }
        (bytes, starts)
    }

    fn numbers_read(scan: &Scan) -> Vec<u64> {
        scan.records.iter().map(|(seq, _)| *seq).collect()
    }

    #[test]
    fn a_flipped_bit_costs_its_record_and_reading_resumes_at_the_next() {
        let (mut bytes, starts) = records(1, 10);
        bytes[starts[4] + 20] ^= 0x10;
        let found = scan(&bytes, 1, None);
        assert_eq!(numbers_read(&found), [1, 2, 3, 4, 6, 7, 8, 9, 10]);
        assert_eq!(
            found.gaps,
            [Gap {
                bytes: starts[4] as u64..starts[5] as u64,
                first: 5,
                last: Some(5)
            }]
        );
        assert_eq!(found.read_after, 5);
        assert_eq!(found.torn, None);
    }

    #[test]
    fn any_one_flipped_bit_costs_exactly_the_record_it_lands_in() {
        let (bytes, starts) = records(1, 8);
        for at in 0..bytes.len() {
            let k = starts.iter().rposition(|s| *s <= at).unwrap() as u64 + 1;
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[at] ^= 1 << bit;
                let found = scan(&damaged, 1, None);
                let read: Vec<u64> = (1..=8).filter(|n| *n != k).collect();
                assert_eq!(numbers_read(&found), read, "byte {at} bit {bit}");
                // Nothing after the last record tells how many it was.
                let last = (k < 8).then_some(k);
                assert_eq!(found.gaps.len(), 1, "byte {at} bit {bit}");
                assert_eq!((found.gaps[0].first, found.gaps[0].last), (k, last));
                assert_eq!(found.torn, None, "byte {at} bit {bit}");
            }
        }
    }

    #[test]
    fn a_damaged_length_is_damage_not_a_torn_tail() {
        // A larger length makes the record run past the end of the segment, as a torn one
        // does; the records after it tell otherwise.
        let (mut bytes, starts) = records(1, 6);
        bytes[starts[2] + 3] ^= 0x01;
        let found = scan(&bytes, 1, None);
        assert_eq!(numbers_read(&found), [1, 2, 4, 5, 6]);
        assert_eq!(found.gaps[0].bytes, starts[2] as u64..starts[3] as u64);
        // In the last record: its bytes still check whole against its checksum.
        let (mut bytes, starts) = records(1, 3);
        bytes[starts[2] + 2] ^= 0x01;
        let found = scan(&bytes, 1, None);
        assert_eq!(found.torn, None);
        assert_eq!(
            found.gaps,
            [Gap {
                bytes: starts[2] as u64..bytes.len() as u64,
                first: 3,
                last: None
            }]
        );
    }

    #[test]
    fn a_record_cut_short_at_the_end_of_the_newest_segment_is_torn() {
        let (mut bytes, _) = records(1, 3);
        let whole = bytes.len();
        bytes.extend(&encode(4, &ops(4))[..30]);
        let found = scan(&bytes, 1, None);
        assert_eq!(numbers_read(&found), [1, 2, 3]);
        assert!(found.gaps.is_empty());
        assert_eq!(found.torn, Some(whole as u64));
        // Zeros where the file system had allocated space.
        let (mut bytes, _) = records(1, 3);
        bytes.extend([0u8; 4096]);
        assert_eq!(scan(&bytes, 1, None).torn, Some(whole as u64));
    }

    #[test]
    fn damage_at_the_end_of_an_older_segment_is_told_by_the_next_one() {
        // The next segment starts at 5: record 4 was there, and is lost.
        let (mut bytes, starts) = records(1, 4);
        bytes.truncate(starts[3] + 25);
        let found = scan(&bytes, 1, Some(5));
        assert_eq!(
            found.gaps,
            [Gap {
                bytes: starts[3] as u64..bytes.len() as u64,
                first: 4,
                last: Some(4)
            }]
        );
        // The next segment starts at 4: the cut record was a failed write, not a record.
        let found = scan(&bytes, 1, Some(4));
        assert!(found.gaps.is_empty());
        assert_eq!(found.torn, Some(starts[3] as u64));
    }

    #[test]
    fn data_that_looks_like_a_record_is_not_taken_for_one_out_of_order() {
        // A stale copy of record 2 after damage in record 3: its number is not after 2.
        let (mut bytes, starts) = records(1, 4);
        let stale = encode(2, &ops(2));
        bytes.splice(starts[2]..starts[3], stale);
        let found = scan(&bytes, 1, None);
        assert_eq!(numbers_read(&found), [1, 2, 4]);
        assert_eq!(found.gaps[0].first, 3);
        assert_eq!(found.gaps[0].last, Some(3));
    }

    #[test]
    fn the_report_tells_what_was_lost_and_what_sled_holds() {
        let damaged = |applied, gaps| Damaged {
            segment: "j/00000000000000000001.log".into(),
            size: 900,
            gaps,
            read_after: 3,
            applied,
            kept: "j/corrupt/00000000000000000001.log.20261121T100000Z".into(),
        };
        let gap = |first, last| Gap {
            bytes: 100..200,
            first,
            last,
        };
        let text = damaged(0, vec![gap(5, Some(5))]).to_string();
        assert_eq!(
            text,
            "journal segment j/00000000000000000001.log (900 bytes) is damaged: bytes 100..200 \
             held record 5, lost; 3 records after the damage were read and recovered; the \
             damaged file is kept, unchanged, at j/corrupt/00000000000000000001.log.20261121T100000Z. \
             A lost record (an accepted event, an attempt's result, a replay, a purge) cannot be \
             applied again: it survives only if sled had already saved it itself"
        );
        let partly = damaged(6, vec![gap(5, Some(8))]);
        assert_eq!(partly.lost(), [(7, Some(8))]);
        assert!(
            partly
                .to_string()
                .contains("held records 5 to 8: records 7 to 8 lost (sled holds the others)")
        );
        let held = damaged(9, vec![gap(5, Some(8))]);
        assert!(held.lost().is_empty());
        assert!(
            held.to_string()
                .contains("held records 5 to 8, which sled holds already")
        );
        let open = damaged(0, vec![gap(5, None)]);
        assert!(
            open.to_string()
                .contains("held record 5 and any after it, lost")
        );
    }

    #[test]
    fn copies_aside_never_overwrite_an_earlier_one() {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join("00000000000000000001.log");
        std::fs::write(&segment, b"first").unwrap();
        let one = keep_aside(&segment, b"first").unwrap();
        let two = keep_aside(&segment, b"second").unwrap();
        assert_ne!(one, two);
        assert_eq!(std::fs::read(one).unwrap(), b"first");
        assert_eq!(std::fs::read(&two).unwrap(), b"second");
        assert!(two.starts_with(dir.path().join("corrupt")));
    }
}
