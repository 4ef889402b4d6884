//! Per-feature work spread over the machine's cores with scoped threads.
//!
//! Features are independent, so a report or a profile is a map over them. Each worker takes
//! every n-th item; results come back in input order, so output never depends on scheduling.

use std::num::NonZeroUsize;

/// Maps `f` over `items` on up to `available_parallelism` threads, keeping the order.
pub fn map_in_order<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let f = &f;
    let share = move |worker: usize| {
        items
            .iter()
            .enumerate()
            .skip(worker)
            .step_by(threads)
            .map(|(i, item)| (i, f(item)))
            .collect::<Vec<_>>()
    };
    let mut slots: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        // The calling thread takes the first share itself.
        let workers: Vec<_> = (1..threads)
            .map(|worker| scope.spawn(move || share(worker)))
            .collect();
        let mut place = |results: Vec<(usize, R)>| {
            for (i, result) in results {
                slots[i] = Some(result);
            }
        };
        place(share(0));
        for worker in workers {
            // A panic in a worker is a bug; re-raise it on the caller's thread.
            place(
                worker
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            );
        }
    });
    slots
        .into_iter()
        .map(|slot| slot.expect("every index is mapped once"))
        .collect()
}

/// [`map_in_order`] over owned items: each is moved into `f` (no copy of it is kept).
pub fn map_owned_in_order<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let slots: Vec<std::sync::Mutex<Option<T>>> = items
        .into_iter()
        .map(|item| std::sync::Mutex::new(Some(item)))
        .collect();
    map_in_order(&slots, |slot| {
        let mut slot = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(slot.take().expect("every item is taken once"))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order() {
        let items: Vec<u32> = (0..101).collect();
        let out = super::map_in_order(&items, |x| x * 2);
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        let owned: Vec<String> = items.iter().map(u32::to_string).collect();
        let out = super::map_owned_in_order(owned.clone(), |s| s + "!");
        assert_eq!(
            out,
            owned.iter().map(|s| format!("{s}!")).collect::<Vec<_>>()
        );
    }
}
