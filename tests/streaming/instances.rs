//! Two instances in one consumer group count every record once.

use super::*;

/// Records counted by an instance: closed windows plus its open window.
fn counted(store: &Store) -> u64 {
    let closed: u64 = store
        .latest_windows("payments", 1000)
        .unwrap()
        .iter()
        .map(|w| w.report["window"]["records"].as_u64().unwrap())
        .sum();
    closed
        + store
            .checkpoint("payments")
            .unwrap()
            .map_or(0, |c| c.open_window.records)
}

#[test]
fn two_instances_in_one_group_split_the_partitions_and_count_every_record_once() {
    let Some(broker) = broker() else { return };
    let first = setup(broker, 4);
    // The second instance: same group, topic and baseline; its own store.
    let second_store = first.dir.path().join("var/second.db");
    let second_config = first.dir.path().join("second.toml");
    let text = std::fs::read_to_string(&first.config).unwrap();
    std::fs::write(
        &second_config,
        text.replace("var/driftgate.db", "var/second.db")
            .replace(&first.api, &free_address()),
    )
    .unwrap();

    produce(&first, 0, 20, usize::MAX, None);
    let mut a = start(&first);
    wait_for(
        &first.store,
        &mut a,
        "the first instance to count records",
        |s| counted(s) > 0,
    );
    let mut b = start_with(&second_config, true);
    // The signal that the group rebalanced: the second instance logs its assignment.
    wait_for_log(&mut b, "second", Duration::from_secs(60), |line| {
        (line.contains("partitions assigned") && !line.contains("partitions=0")).then_some(())
    })
    .expect("the second instance was assigned partitions");
    produce(&first, 20, 20, usize::MAX, None);
    let total = 40 * RECORDS_PER_MESSAGE as u64;
    // Wait until both instances together have counted every record (more would be a double
    // count, and is caught below).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let sum = Store::open_read_only(&StoreUrl::sqlite(&first.store)).map_or(0, |s| counted(&s))
            + Store::open_read_only(&StoreUrl::sqlite(&second_store)).map_or(0, |s| counted(&s));
        if sum >= total {
            break;
        }
        assert!(Instant::now() < deadline, "counted {sum} of {total}");
        assert!(a.try_wait().unwrap().is_none() && b.try_wait().unwrap().is_none());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(terminate(&mut b).success());
    assert!(terminate(&mut a).success());
    let a_count = counted(&Store::open_read_only(&StoreUrl::sqlite(&first.store)).unwrap());
    let b_count = counted(&Store::open_read_only(&StoreUrl::sqlite(&second_store)).unwrap());
    assert_eq!(
        a_count + b_count,
        total,
        "every record exactly once: {a_count} + {b_count}"
    );
    assert!(b_count > 0, "the second instance got partitions");
}
