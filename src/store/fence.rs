//! Instances sharing a PostgreSQL store: who writes which checkpoint, and which partitions'
//! offsets.
//!
//! Each instance holds a *lineage* — its checkpoints and its windows' numbering — under a lease
//! it renews; an instance started with the same name takes its lineage over at once, another
//! one only once the lease has expired. Each partition it is assigned is claimed with a new
//! epoch, and resumes from the offset the store holds for it (whoever owned it before). Every
//! commit renews the lineage's lease and moves its partitions' offsets only where the lineage
//! and epoch are still the instance's: a former holder (a stopped process resumed, an instance
//! the group gave up on) gets [`StoreError::Fenced`] and nothing it wrote is kept.

use std::collections::BTreeMap;

use super::db::{values, Sql};
use super::{now_ms, Store, StoreError};

/// What this instance holds in a shared store.
#[derive(Debug, Clone, PartialEq)]
pub struct Fence {
    /// The lineage (the instance's name).
    pub lineage: String,
    /// This process (name, host, process id): another process with the same name is another
    /// owner.
    pub owner: String,
    /// The lineage's epoch when this process took it.
    pub epoch: i64,
    /// How long the lease lasts from each renewal, milliseconds.
    pub lease_ms: i64,
    /// Claimed partitions (`stream` → `topic/partition` → epoch).
    pub partitions: BTreeMap<String, BTreeMap<String, i64>>,
}

impl Fence {
    /// What a window's keys carry: `@name`.
    pub fn tag(&self) -> String {
        format!("@{}", self.lineage)
    }
}

impl Store {
    /// Takes lineage `name` for `owner`: at once when it is unheld, expired or already this
    /// name's (a restart); the previous holder is fenced from then on. Then every commit of
    /// this connection is checked against it.
    pub fn claim_lineage(
        &mut self,
        name: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Fence, StoreError> {
        let now = now_ms();
        let tx = self.db.transaction()?;
        let row = tx.query_opt(
            "INSERT INTO lineages (name, owner, epoch, lease_until) VALUES ($1, $2, 1, $3)
             ON CONFLICT (name) DO UPDATE SET owner = $2, epoch = lineages.epoch + 1,
               lease_until = $3
             RETURNING epoch",
            values![name, owner, now + lease_ms],
        )?;
        tx.commit()?;
        let epoch = row.map_or(Ok(1), |row| row.get(0))?;
        let fence = Fence {
            lineage: name.to_string(),
            owner: owner.to_string(),
            epoch,
            lease_ms,
            partitions: BTreeMap::new(),
        };
        self.fence = Some(fence.clone());
        Ok(fence)
    }

    /// Renews the lease of `fence` (from any connection): `Fenced` when another process holds
    /// the lineage now.
    pub fn renew_lease(&self, fence: &Fence) -> Result<(), StoreError> {
        renew(&self.db, fence)
    }

    /// Claims `parts` (`topic/partition`) of `stream` for this connection's lineage, each with
    /// a new epoch; returns where each resumes (`None`: the store has no offset for it yet).
    pub fn claim_partitions(
        &mut self,
        stream: &str,
        parts: &[String],
    ) -> Result<Vec<(String, Option<i64>)>, StoreError> {
        let Some(fence) = &self.fence else {
            return Ok(Vec::new());
        };
        let lineage = fence.lineage.clone();
        let tx = self.db.transaction()?;
        renew(&tx, fence)?;
        let mut claimed = Vec::new();
        for part in parts {
            let row = tx.query_opt(
                "INSERT INTO partitions (stream, part, lineage, epoch, claimed_at)
                 VALUES ($1, $2, $3, 1, $4)
                 ON CONFLICT (stream, part) DO UPDATE SET lineage = $3,
                   epoch = partitions.epoch + 1, claimed_at = $4
                 RETURNING epoch, next_offset",
                values![stream, part, &lineage, now_ms()],
            )?;
            let row = row.ok_or_else(|| StoreError::Damaged {
                what: "partition claim",
                message: "no row returned".into(),
            })?;
            claimed.push((part.clone(), row.get::<i64>(0)?, row.get::<Option<i64>>(1)?));
        }
        tx.commit()?;
        let fence = self.fence.as_mut().expect("checked above");
        let owned = fence.partitions.entry(stream.to_string()).or_default();
        for (part, epoch, _) in &claimed {
            owned.insert(part.clone(), *epoch);
        }
        Ok(claimed
            .into_iter()
            .map(|(part, _, next)| (part, next))
            .collect())
    }

    /// Forgets `parts` of `stream` (revoked): their offsets are no longer this lineage's to
    /// move.
    pub fn release_partitions(&mut self, stream: &str, parts: &[String]) {
        if let Some(owned) = self
            .fence
            .as_mut()
            .and_then(|f| f.partitions.get_mut(stream))
        {
            for part in parts {
                owned.remove(part);
            }
        }
    }

    /// The partitions of `stream` this connection's lineage holds (all, without a fence).
    pub fn holds(&self, stream: &str, part: &str) -> bool {
        self.fence.as_ref().is_none_or(|f| {
            f.partitions
                .get(stream)
                .is_some_and(|owned| owned.contains_key(part))
        })
    }

    /// The lineage whose checkpoints this connection reads and writes (`''` alone).
    pub(super) fn lineage(&self) -> &str {
        self.fence.as_ref().map_or("", |f| f.lineage.as_str())
    }
}

/// In a commit: the lease renewed and every held partition's offset moved, or `Fenced`.
pub(super) fn check(
    tx: &impl Sql,
    fence: &Fence,
    stream: &str,
    next_offsets: &BTreeMap<String, i64>,
) -> Result<(), StoreError> {
    renew(tx, fence)?;
    let Some(owned) = fence.partitions.get(stream) else {
        return Ok(());
    };
    for (part, epoch) in owned {
        let Some(next) = next_offsets.get(part) else {
            continue;
        };
        let moved = tx.execute(
            "UPDATE partitions SET next_offset = $1
             WHERE stream = $2 AND part = $3 AND lineage = $4 AND epoch = $5",
            values![*next, stream, part, &fence.lineage, *epoch],
        )?;
        if moved == 0 {
            return Err(StoreError::Fenced(format!(
                "partition {part} of stream {stream} was claimed by another instance"
            )));
        }
    }
    Ok(())
}

pub(super) fn renew(db: &impl Sql, fence: &Fence) -> Result<(), StoreError> {
    let renewed = db.execute(
        "UPDATE lineages SET lease_until = $1 WHERE name = $2 AND owner = $3 AND epoch = $4",
        values![
            now_ms() + fence.lease_ms,
            &fence.lineage,
            &fence.owner,
            fence.epoch
        ],
    )?;
    if renewed == 0 {
        return Err(StoreError::Fenced(format!(
            "lineage {} was taken over by another process",
            fence.lineage
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::pipeline::Checkpoint;
    use crate::store::{testing, Store, StoreError};

    fn checkpoint(next: &[(&str, i64)]) -> Checkpoint {
        Checkpoint {
            open_window: crate::window::Windower::new(
                crate::window::WindowSpec::Records(10),
                crate::decode::Schema { features: vec![] },
                1,
            )
            .snapshot(),
            next_offsets: next.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            policies: Default::default(),
            unreported_window: None,
            deferred_errors: Vec::new(),
            open_errors: None,
            messages: Default::default(),
            since_retrain: None,
        }
    }

    fn fenced(result: Result<(), StoreError>) -> bool {
        matches!(result, Err(StoreError::Fenced(_)))
    }

    #[test]
    fn issue_16_a_partition_claimed_elsewhere_fences_its_former_owner_and_resumes_there() {
        let Some(url) = testing::postgres_database() else {
            return;
        };
        let (mut a, mut b) = (Store::open(&url).unwrap(), Store::open(&url).unwrap());
        a.claim_lineage("a", "a/1", 60_000).unwrap();
        b.claim_lineage("b", "b/1", 60_000).unwrap();
        let parts = ["t/0".to_string(), "t/1".to_string()];
        assert_eq!(
            a.claim_partitions("s", &parts).unwrap(),
            vec![("t/0".into(), None), ("t/1".into(), None)]
        );
        a.commit("s", &[], &checkpoint(&[("t/0", 10), ("t/1", 20)]), 10)
            .unwrap();
        // The group gives t/1 to b: it resumes where a's last commit left it.
        assert_eq!(
            b.claim_partitions("s", &parts[1..]).unwrap(),
            vec![("t/1".into(), Some(20))]
        );
        // a, unaware (stopped, cut off), cannot move t/1 — nor anything in the same commit.
        assert!(fenced(a.commit(
            "s",
            &[],
            &checkpoint(&[("t/0", 11), ("t/1", 25)]),
            10
        )));
        // After a revoke, a's commits leave t/1 alone.
        a.release_partitions("s", &parts[1..]);
        a.commit("s", &[], &checkpoint(&[("t/0", 12), ("t/1", 25)]), 10)
            .unwrap();
        b.commit("s", &[], &checkpoint(&[("t/1", 30)]), 10).unwrap();
        let mut c = Store::open(&url).unwrap();
        c.claim_lineage("c", "c/1", 60_000).unwrap();
        assert_eq!(
            c.claim_partitions("s", &parts).unwrap(),
            vec![("t/0".into(), Some(12)), ("t/1".into(), Some(30))]
        );
        // Each lineage keeps its own checkpoint.
        assert_eq!(
            a.checkpoint("s").unwrap().unwrap().next_offsets,
            BTreeMap::from([("t/0".to_string(), 12), ("t/1".to_string(), 25)])
        );
        assert_eq!(b.checkpoint("s").unwrap().unwrap().next_offsets["t/1"], 30);
    }

    #[test]
    fn issue_16_a_restarted_instance_takes_its_lineage_over_and_the_old_process_is_fenced() {
        let Some(url) = testing::postgres_database() else {
            return;
        };
        let mut old = Store::open(&url).unwrap();
        let fence = old.claim_lineage("a", "a/1", 60_000).unwrap();
        old.commit("s", &[], &checkpoint(&[("t/0", 5)]), 10)
            .unwrap();
        let mut new = Store::open(&url).unwrap();
        let taken = new.claim_lineage("a", "a/2", 60_000).unwrap();
        assert_eq!(taken.epoch, fence.epoch + 1);
        // The new process continues the lineage's checkpoint; the old one can write nothing.
        assert_eq!(new.checkpoint("s").unwrap().unwrap().next_offsets["t/0"], 5);
        assert!(fenced(old.commit("s", &[], &checkpoint(&[("t/0", 6)]), 10)));
        assert!(fenced(old.renew_lease(&fence)));
        new.renew_lease(&taken).unwrap();
    }
}
