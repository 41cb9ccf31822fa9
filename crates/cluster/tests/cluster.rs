//! Three journal nodes in one process over loopback TCP. No sleeps: every wait is on a status
//! or applied-index change, bounded by a timeout.

mod common;

use std::time::Duration;

use common::{no_tweak, Cluster, TestSm, WAIT};
use twinsite_cluster::{JournalError, NodeRole};

fn applied_commands(cluster: &Cluster, role: NodeRole) -> Vec<Vec<u8>> {
    cluster.node(role).read(|sm: &TestSm| sm.applied.clone())
}

/// Goal: every node applies the same commands in the same order. Method: propose concurrently
/// on the leader, wait for all nodes to apply, compare state hashes index by index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_reaches_the_same_state_hash_at_the_same_index() {
    let cluster = Cluster::start(true, no_tweak).await;
    cluster.wait_serving(NodeRole::Primary).await;
    let last = cluster
        .propose_many(NodeRole::Primary, "order", 200, 16)
        .await;
    cluster.wait_applied(last).await;
    cluster.assert_same_hashes(last);
    let primary = applied_commands(&cluster, NodeRole::Primary);
    assert_eq!(primary.len(), 200);
    for role in [NodeRole::Backup, NodeRole::Witness] {
        assert_eq!(
            applied_commands(&cluster, role),
            primary,
            "{role:?} differs"
        );
    }
    let metrics = cluster.node(NodeRole::Primary).metrics();
    assert_eq!(metrics.status.commit_index, last);
    assert_eq!(metrics.replication.len(), 3, "{metrics:?}");
    assert!(
        metrics.wal_syncs > 0 && metrics.wal_entries >= 200,
        "{metrics:?}"
    );
    // Followers refuse proposals and name the leader.
    let refused = cluster.node(NodeRole::Backup).propose(b"x".to_vec()).await;
    assert_eq!(
        refused,
        Err(JournalError::NotLeader {
            role: NodeRole::Backup,
            leader: Some(NodeRole::Primary)
        })
    );
    assert_eq!(
        cluster.node(NodeRole::Witness).propose(b"x".to_vec()).await,
        Err(JournalError::Witness)
    );
    cluster.cleanup();
}

/// Goal: the scheduled failover moves leadership without losing a committed command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_transfer_primary_to_backup_loses_nothing() {
    let cluster = Cluster::start(true, no_tweak).await;
    cluster.wait_serving(NodeRole::Primary).await;
    let before = cluster
        .propose_many(NodeRole::Primary, "before", 50, 8)
        .await;
    cluster
        .node(NodeRole::Primary)
        .transfer_leadership(NodeRole::Backup)
        .await
        .unwrap();
    cluster.wait_serving(NodeRole::Backup).await;
    assert!(!cluster.node(NodeRole::Primary).is_serving());
    let after = cluster.propose_many(NodeRole::Backup, "after", 50, 8).await;
    assert!(after > before);
    cluster.wait_applied(after).await;
    cluster.assert_same_hashes(after);
    for role in common::ROLES {
        let applied = applied_commands(&cluster, role);
        assert_eq!(applied.len(), 100, "{role:?}");
        assert!(
            applied.contains(&b"before-49".to_vec()) && applied.contains(&b"after-49".to_vec())
        );
    }
    cluster.cleanup();
}

/// Goal: losing the leader loses no committed command. Method: stop the primary's node
/// (tasks aborted, raft shut down); backup and witness elect, the backup ends up serving, and
/// both hold every command the primary acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leader_backup_and_witness_elect_and_continue() {
    let mut cluster = Cluster::start(true, no_tweak).await;
    cluster.wait_serving(NodeRole::Primary).await;
    let acknowledged = cluster
        .propose_many(NodeRole::Primary, "acked", 60, 12)
        .await;
    cluster.stop(NodeRole::Primary).await;
    // Whoever wins, the witness never keeps leadership: the backup ends up serving.
    cluster.wait_serving(NodeRole::Backup).await;
    let after = cluster.propose_many(NodeRole::Backup, "after", 20, 4).await;
    assert!(after > acknowledged);
    cluster.wait_applied(after).await;
    cluster.assert_same_hashes(after);
    for role in [NodeRole::Backup, NodeRole::Witness] {
        let applied = applied_commands(&cluster, role);
        assert_eq!(applied.len(), 80, "{role:?}");
        for i in 0..60 {
            assert!(
                applied.contains(&format!("acked-{i}").into_bytes()),
                "{role:?} lost acked-{i}"
            );
        }
    }
    cluster.cleanup();
}

/// Goal: a witness that becomes leader hands leadership to the backup site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witness_that_becomes_leader_hands_over_to_backup() {
    let cluster = Cluster::start(true, no_tweak).await;
    cluster.wait_serving(NodeRole::Primary).await;
    let last = cluster.propose_many(NodeRole::Primary, "cmd", 10, 2).await;
    cluster
        .node(NodeRole::Primary)
        .request_transfer(NodeRole::Witness)
        .await
        .unwrap();
    cluster
        .wait_until("witness handover to backup", WAIT, |c| {
            c.node(NodeRole::Witness).metrics().witness_handovers >= 1
                && c.node(NodeRole::Backup).is_serving()
        })
        .await;
    cluster.wait_serving(NodeRole::Backup).await;
    let after = cluster.propose_many(NodeRole::Backup, "after", 10, 2).await;
    assert!(after > last);
    cluster.wait_applied(after).await;
    cluster.assert_same_hashes(after);
    cluster.cleanup();
}

/// Goal: a restart restores state from disk by itself: latest snapshot plus journal tail.
/// Method: snapshot every 30 entries, stop all three nodes, restart them, and check each
/// recovers its pre-restart state hash before any new command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_disk_restores_snapshot_and_tail() {
    fn small(config: &mut twinsite_cluster::JournalConfig) {
        config.snapshot_every_entries = 30;
        config.log_entries_kept_after_snapshot = 5;
        config.wal_segment_bytes = 16 << 10;
    }
    let mut cluster = Cluster::start(true, small).await;
    cluster.wait_serving(NodeRole::Primary).await;
    let last = cluster
        .propose_many(NodeRole::Primary, "cmd", 100, 10)
        .await;
    cluster.wait_applied(last).await;
    cluster
        .wait_until("snapshots taken", WAIT, |c| {
            c.nodes
                .values()
                .all(|n| n.metrics().snapshot_index.is_some_and(|i| i >= 30))
        })
        .await;
    let before: Vec<(u64, u64)> = cluster.nodes.values().map(|n| n.state_hash()).collect();
    for role in common::ROLES {
        cluster.stop(role).await;
        assert!(cluster.dirs[&role].join("snapshot").exists());
    }
    for role in common::ROLES {
        cluster.restart(role).await.unwrap();
    }
    // Each node replays to its own pre-restart applied index from its own disk.
    for (role, (index, hash)) in common::ROLES.iter().zip(&before) {
        let node = cluster.node(*role);
        node.wait_applied(*index, WAIT).await.unwrap();
        assert_eq!(
            node.state_hash_at(*index),
            Some(*hash),
            "{role:?} at {index}"
        );
        assert_eq!(node.read(|sm| sm.applied.len()), 100);
    }
    let leader = {
        let mut leader = None;
        cluster
            .wait_until("a serving leader", WAIT, |c| {
                leader = c.nodes.values().find(|n| n.is_serving()).map(|n| n.role());
                leader.is_some()
            })
            .await;
        leader.unwrap()
    };
    let after = cluster.propose_many(leader, "after", 10, 2).await;
    cluster.wait_applied(after).await;
    cluster.assert_same_hashes(after);
    cluster.cleanup();
}

/// Goal: a corrupt record before the log tail stops the node with the file and offset and
/// says how to recover; deleting the data directory re-syncs the node from its peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_record_is_reported_with_position_and_node_recovers_by_resync() {
    let mut cluster = Cluster::start(true, no_tweak).await;
    cluster.wait_serving(NodeRole::Primary).await;
    let last = cluster.propose_many(NodeRole::Primary, "cmd", 20, 4).await;
    cluster.wait_applied(last).await;
    cluster.stop(NodeRole::Backup).await;
    let segment = cluster.dirs[&NodeRole::Backup]
        .join("wal")
        .join("0000000000.wal");
    let mut bytes = std::fs::read(&segment).unwrap();
    // Damage the second record's payload; later records follow it, so this is not a torn tail.
    let first_len = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
    let second = 8 + first_len;
    bytes[second + 8 + 3] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();
    let error = cluster
        .restart(NodeRole::Backup)
        .await
        .expect_err("a damaged log refuses to start");
    let message = error.to_string();
    assert!(
        message.contains(&format!("{}:{second}", segment.display())),
        "{message}"
    );
    assert!(
        message.contains("deleting this node's data directory"),
        "{message}"
    );
    // The documented recovery: delete the data directory and restart; it re-syncs.
    std::fs::remove_dir_all(&cluster.dirs[&NodeRole::Backup]).unwrap();
    cluster.restart(NodeRole::Backup).await.unwrap();
    let after = cluster.propose_many(NodeRole::Primary, "after", 5, 1).await;
    cluster.wait_applied(after).await;
    cluster.assert_same_hashes(after);
    assert_eq!(applied_commands(&cluster, NodeRole::Backup).len(), 25);
    cluster.cleanup();
}

/// Goal: an isolated old leader never acknowledges a command it could not commit. Method:
/// isolate the primary, propose on it (error, not an ack), let backup and witness elect and
/// continue, heal, and check the unacknowledged command exists nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_old_leader_cannot_commit() {
    fn quick(config: &mut twinsite_cluster::JournalConfig) {
        config.propose_timeout = Duration::from_millis(1500);
    }
    let cluster = Cluster::start(true, quick).await;
    cluster.wait_serving(NodeRole::Primary).await;
    let acked = cluster
        .propose_many(NodeRole::Primary, "acked", 10, 2)
        .await;
    cluster.wait_applied(acked).await;
    let primary = cluster.node(NodeRole::Primary);
    primary.set_isolated(true);
    let result = primary.propose(b"lost".to_vec()).await;
    assert!(
        matches!(
            result,
            Err(JournalError::Timeout { .. }
                | JournalError::QuorumLost { .. }
                | JournalError::NotLeader { .. })
        ),
        "an isolated leader must not acknowledge: {result:?}"
    );
    cluster
        .wait_until("backup serving without the primary", WAIT, |c| {
            c.node(NodeRole::Backup).is_serving()
        })
        .await;
    let after = cluster.propose_many(NodeRole::Backup, "after", 10, 2).await;
    primary.set_isolated(false);
    cluster.wait_applied(after).await;
    cluster.wait_serving(NodeRole::Backup).await;
    cluster.assert_same_hashes(after);
    for role in common::ROLES {
        let applied = applied_commands(&cluster, role);
        assert_eq!(applied.len(), 20, "{role:?}");
        assert!(
            !applied.contains(&b"lost".to_vec()),
            "{role:?} applied an unacknowledged command"
        );
    }
    cluster.cleanup();
}

/// Goal: memory durability works for demos and says so in its metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_mode_replicates_and_is_labelled() {
    let cluster = Cluster::start(false, no_tweak).await;
    cluster.wait_serving(NodeRole::Primary).await;
    let last = cluster.propose_many(NodeRole::Primary, "m", 30, 6).await;
    cluster.wait_applied(last).await;
    cluster.assert_same_hashes(last);
    let metrics = cluster.node(NodeRole::Backup).metrics();
    assert!(
        metrics.durability.starts_with("memory"),
        "{}",
        metrics.durability
    );
    assert_eq!(metrics.wal_syncs, 0);
}

/// Goal: a crash in the middle of a WAL write (a torn final record) does not stop the node:
/// the torn record is truncated on restart and the node catches up with its peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_final_record_is_truncated_and_node_rejoins() {
    let mut cluster = Cluster::start(true, no_tweak).await;
    cluster.wait_serving(NodeRole::Primary).await;
    let last = cluster.propose_many(NodeRole::Primary, "cmd", 10, 2).await;
    cluster.wait_applied(last).await;
    cluster.stop(NodeRole::Witness).await;
    let segment = cluster.dirs[&NodeRole::Witness]
        .join("wal")
        .join("0000000000.wal");
    let mut bytes = std::fs::read(&segment).unwrap();
    let mut end = 0usize;
    loop {
        let len = u32::from_le_bytes(bytes[end..end + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        end += 8 + len;
    }
    // Half a record: a header promising 300 bytes, a wrong CRC and 40 bytes of payload.
    bytes[end..end + 4].copy_from_slice(&300u32.to_le_bytes());
    bytes[end + 4..end + 8].copy_from_slice(&0xdead_beefu32.to_le_bytes());
    bytes[end + 8..end + 48].fill(b'x');
    std::fs::write(&segment, &bytes).unwrap();
    cluster
        .restart(NodeRole::Witness)
        .await
        .expect("a torn tail is not corruption");
    let after = cluster.propose_many(NodeRole::Primary, "after", 5, 1).await;
    cluster.wait_applied(after).await;
    cluster.assert_same_hashes(after);
    assert_eq!(applied_commands(&cluster, NodeRole::Witness).len(), 15);
    cluster.cleanup();
}
