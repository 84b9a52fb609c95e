//! Retention policies: which snapshots a `forget --keep-*` keeps, and why.
//!
//! Snapshots are grouped by host and source path; within a group, newest
//! first, each rule keeps the newest snapshot of each of its last N
//! calendar buckets (hours, days, ISO weeks, months, years, in the given
//! time zone). `--keep-last N` keeps the N newest; `--keep-within D` keeps
//! everything within D of the group's newest snapshot (so a repository
//! whose saves stopped does not lose everything as time passes). A
//! snapshot is kept when any rule keeps it.

use crate::format::records::Timestamp;
use crate::format::SnapshotId;
use jiff::tz::TimeZone;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
    /// Seconds.
    pub within: Option<i64>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }
}

#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: SnapshotId,
    pub time: Timestamp,
    pub host: String,
    pub path: Vec<u8>,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id: SnapshotId,
    pub keep: bool,
    /// The rules that keep it ("last", "daily 2026-01-31", "within 30d").
    pub reasons: Vec<String>,
}

#[derive(Clone, Copy)]
enum Bucket {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Bucket {
    fn key(self, t: Timestamp, tz: &TimeZone) -> String {
        let z =
            jiff::Timestamp::new(t.secs, t.nanos as i32).unwrap_or(jiff::Timestamp::UNIX_EPOCH).to_zoned(tz.clone());
        match self {
            Bucket::Hourly => z.strftime("%Y-%m-%d %H:00").to_string(),
            Bucket::Daily => z.strftime("%Y-%m-%d").to_string(),
            Bucket::Weekly => {
                let w = z.date().iso_week_date();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Bucket::Monthly => z.strftime("%Y-%m").to_string(),
            Bucket::Yearly => z.strftime("%Y").to_string(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Bucket::Hourly => "hourly",
            Bucket::Daily => "daily",
            Bucket::Weekly => "weekly",
            Bucket::Monthly => "monthly",
            Bucket::Yearly => "yearly",
        }
    }
}

/// A decision for every candidate, in the order given.
pub fn apply(policy: &Policy, candidates: &[Candidate], tz: &TimeZone) -> Vec<Decision> {
    let mut groups: BTreeMap<(&str, &[u8]), Vec<usize>> = BTreeMap::new();
    for (i, c) in candidates.iter().enumerate() {
        groups.entry((c.host.as_str(), c.path.as_slice())).or_default().push(i);
    }
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); candidates.len()];
    for members in groups.values_mut() {
        members.sort_by_key(|&i| std::cmp::Reverse((candidates[i].time, candidates[i].id)));
        if let Some(n) = policy.last {
            for &i in members.iter().take(n as usize) {
                reasons[i].push("last".into());
            }
        }
        if let Some(secs) = policy.within {
            let newest = candidates[members[0]].time.secs;
            for &i in members.iter().filter(|&&i| newest - candidates[i].time.secs <= secs) {
                reasons[i].push(format!("within {}", format_duration(secs)));
            }
        }
        let rules = [
            (policy.hourly, Bucket::Hourly),
            (policy.daily, Bucket::Daily),
            (policy.weekly, Bucket::Weekly),
            (policy.monthly, Bucket::Monthly),
            (policy.yearly, Bucket::Yearly),
        ];
        for (count, bucket) in rules {
            let Some(n) = count else { continue };
            let mut seen: Vec<String> = Vec::new();
            for &i in members.iter() {
                if seen.len() >= n as usize {
                    break;
                }
                let key = bucket.key(candidates[i].time, tz);
                if seen.last() != Some(&key) {
                    reasons[i].push(format!("{} {key}", bucket.name()));
                    seen.push(key);
                }
            }
        }
    }
    candidates
        .iter()
        .zip(reasons)
        .map(|(c, reasons)| Decision { id: c.id, keep: !reasons.is_empty(), reasons })
        .collect()
}

/// Parses `30d`, `12h`, `2w`, `6m` (30-day months), `1y` (365 days), or
/// combinations such as `1d12h`.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a duration such as 30d, 12h or 1y6m");
    let mut total: i64 = 0;
    let mut num = String::new();
    for ch in s.trim().chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
            continue;
        }
        let n: i64 = num.parse().map_err(|_| bad())?;
        let unit = match ch {
            'h' => 3600,
            'd' => 86400,
            'w' => 7 * 86400,
            'm' => 30 * 86400,
            'y' => 365 * 86400,
            _ => return Err(bad()),
        };
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
        num.clear();
    }
    if !num.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(total)
}

fn format_duration(secs: i64) -> String {
    if secs % 86400 == 0 {
        format!("{}d", secs / 86400)
    } else {
        format!("{}h", secs / 3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        let t: jiff::Timestamp = s.parse().unwrap();
        Timestamp { secs: t.as_second(), nanos: 0 }
    }

    fn snaps(times: &[&str]) -> Vec<Candidate> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| Candidate {
                id: SnapshotId(i as u32 + 1),
                time: at(t),
                host: "h".into(),
                path: b"/src".to_vec(),
                tags: Vec::new(),
            })
            .collect()
    }

    fn kept(policy: Policy, c: &[Candidate], tz: &TimeZone) -> Vec<u32> {
        apply(&policy, c, tz).iter().filter(|d| d.keep).map(|d| d.id.0).collect()
    }

    #[test]
    fn table_of_policies() {
        let utc = TimeZone::UTC;
        // ids 1..=8, oldest first.
        let c = snaps(&[
            "2025-12-30T10:00:00Z", // 1  Tue, ISO week 2026-W01
            "2026-01-04T10:00:00Z", // 2  Sun, 2026-W01
            "2026-01-05T09:00:00Z", // 3  Mon, 2026-W02
            "2026-01-05T09:30:00Z", // 4  same hour as 3
            "2026-01-05T23:00:00Z", // 5  same day as 3, 4
            "2026-01-31T08:00:00Z", // 6  Sat, 2026-W05
            "2026-02-01T08:00:00Z", // 7  Sun, 2026-W05
            "2026-02-01T09:00:00Z", // 8  newest
        ]);
        let p = |f: fn(&mut Policy)| {
            let mut p = Policy::default();
            f(&mut p);
            p
        };
        let table: Vec<(Policy, Vec<u32>)> = vec![
            (p(|p| p.last = Some(3)), vec![6, 7, 8]),
            (p(|p| p.last = Some(0)), vec![]),
            (p(|p| p.hourly = Some(3)), vec![6, 7, 8]),
            (p(|p| p.hourly = Some(5)), vec![4, 5, 6, 7, 8]),
            (p(|p| p.daily = Some(3)), vec![5, 6, 8]),
            (p(|p| p.daily = Some(100)), vec![1, 2, 5, 6, 8]),
            (p(|p| p.weekly = Some(2)), vec![5, 8]),
            (p(|p| p.weekly = Some(5)), vec![2, 5, 8]),
            (p(|p| p.monthly = Some(2)), vec![6, 8]),
            (p(|p| p.monthly = Some(9)), vec![1, 6, 8]),
            (p(|p| p.yearly = Some(9)), vec![1, 8]),
            (p(|p| p.within = Some(86400)), vec![7, 8]),
            (p(|p| p.within = Some(27 * 86400)), vec![3, 4, 5, 6, 7, 8]),
            (
                p(|p| {
                    p.last = Some(1);
                    p.monthly = Some(2);
                }),
                vec![6, 8],
            ),
        ];
        for (policy, want) in table {
            assert_eq!(kept(policy.clone(), &c, &utc), want, "{policy:?}");
        }
    }

    #[test]
    fn buckets_follow_the_time_zone() {
        // 23:30 UTC on Jan 31 is Feb 1 in Tokyo (UTC+9): a different day
        // and a different month.
        let c = snaps(&["2026-01-31T12:00:00Z", "2026-01-31T23:30:00Z"]);
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap_or_else(|_| TimeZone::fixed(jiff::tz::offset(9)));
        let p = Policy { daily: Some(5), ..Default::default() };
        assert_eq!(kept(p.clone(), &c, &TimeZone::UTC), vec![2]);
        assert_eq!(kept(p, &c, &tokyo), vec![1, 2]);
    }

    #[test]
    fn groups_by_host_and_path_and_explains() {
        let mut c = snaps(&["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]);
        c[0].host = "other".into();
        let d = apply(&Policy { last: Some(1), ..Default::default() }, &c, &TimeZone::UTC);
        assert!(d[0].keep, "the only snapshot of its host stays");
        assert!(!d[1].keep);
        assert_eq!(d[2].reasons, vec!["last".to_string()]);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(30 * 86400));
        assert_eq!(parse_duration("12h"), Ok(12 * 3600));
        assert_eq!(parse_duration("1d12h"), Ok(36 * 3600));
        assert_eq!(parse_duration("1y"), Ok(365 * 86400));
        for bad in ["", "d", "12", "3x", "-1d", "0d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
