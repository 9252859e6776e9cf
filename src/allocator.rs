//! Keeps freed memory in the process instead of handing it back to the kernel.
//!
//! libtorch allocates every intermediate tensor afresh. glibc returns large freed
//! blocks to the kernel (trimming the heap top, and each thread arena's heaps, once
//! 128 KB or more is free there), so the next step's tensors of the same sizes fault
//! their pages in again, zeroed by the kernel: a t-SNE run of 10 000 points spent
//! 6.3 s of 34 s in the kernel that way, 1.7 s with trimming off. A thread arena's
//! heap still goes back whole once it is empty, whatever the trim setting, so every
//! thread allocates from the one main arena: with the two training phases side by side
//! on their own threads (10 epochs of the demo preset), kernel time went 22.0 → 8.2 s
//! and wall time 47.2 → 36.2 s. Set once at start; memory then stays at the process's
//! peak, as with any caching allocator.
//!
//! Training goes one step further ([`HeapForEveryBlock`]): blocks past glibc's
//! largest mapping threshold (32 MB: MobileNetV2's widest activations at 64², batch 96;
//! hundreds of MB at 224²) were still mapped and faulted in afresh every step, so while
//! training no block gets its own mapping. 10 demo epochs then took 4.7 s of system time
//! instead of 7.4 s (four alternating runs), and the bare step at 224² ran about three
//! times as fast. It is not the default: a 100 000-point UMAP + t-SNE with every block on
//! the heap peaked at 2.6 GB instead of 1.4 GB (one run each), likely from its growing
//! vectors, which move by remapping while mapped but by copying on the heap.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    fn mallopt(param: i32, value: i32) -> i32;
}

/// glibc's `mallopt` parameter numbers (malloc.h).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const M_TRIM_THRESHOLD: i32 = -1;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const M_MMAP_THRESHOLD: i32 = -3;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const M_MMAP_MAX: i32 = -4;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const M_ARENA_MAX: i32 = -8;

/// Blocks at least this large get their own mapping (glibc's largest allowed threshold
/// on 64-bit, 32 MB); smaller ones come from the heap and are reused.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;

/// Never trim: free space at the top of a heap stays mapped.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = i32::MAX;

/// Turns heap trimming off, fixes the mapping threshold and keeps one arena (glibc on
/// Linux; elsewhere nothing). Returns whether all three settings were taken.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes the allocator's tuning parameters; glibc
        // documents it as safe to call at any time, from any thread.
        unsafe {
            mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
                && mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && mallopt(M_ARENA_MAX, 1) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// glibc's default for `M_MMAP_MAX` (malloc.c's `DEFAULT_MMAP_MAX`), put back when the
/// last [`HeapForEveryBlock`] ends.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const DEFAULT_MMAP_MAX: i32 = 65536;

/// How many [`HeapForEveryBlock`]s live now (trainings can overlap in one process).
static HEAP_HOLDERS: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

/// While one lives, no block gets its own mapping, however large: all come from the
/// heap and are reused (glibc still maps more heap when the heap cannot grow in place).
/// For training, whose steps allocate the same sizes again and again; the maps made
/// after it in the same process (`dmlviz study`) get the mappings back (module doc).
pub struct HeapForEveryBlock {
    taken: bool,
}

/// Sets `M_MMAP_MAX`; whether glibc took it (elsewhere nothing, and false).
fn set_mmap_max(value: i32) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: as in keep_freed_memory.
        unsafe { mallopt(M_MMAP_MAX, value) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = value;
        false
    }
}

/// Counts one holder in; whether it is the first.
fn first_in(holders: &mut usize) -> bool {
    *holders += 1;
    *holders == 1
}

/// Counts one holder out; whether it was the last.
fn last_out(holders: &mut usize) -> bool {
    *holders -= 1;
    *holders == 0
}

impl HeapForEveryBlock {
    /// Starts it (the first holder sets the allocator; later ones only count).
    pub fn start() -> Self {
        let mut holders = HEAP_HOLDERS.lock().unwrap_or_else(|e| e.into_inner());
        // Later holders find the setting as the first one left it.
        let taken = if first_in(&mut holders) {
            set_mmap_max(0)
        } else {
            cfg!(all(target_os = "linux", target_env = "gnu"))
        };
        HeapForEveryBlock { taken }
    }

    /// Whether the allocator took the setting.
    pub fn taken(&self) -> bool {
        self.taken
    }
}

impl Drop for HeapForEveryBlock {
    fn drop(&mut self) {
        let mut holders = HEAP_HOLDERS.lock().unwrap_or_else(|e| e.into_inner());
        if last_out(&mut holders) {
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            set_mmap_max(DEFAULT_MMAP_MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_all_three_settings() {
        assert!(super::keep_freed_memory());
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_training_setting() {
        let (outer, inner) = (
            super::HeapForEveryBlock::start(),
            super::HeapForEveryBlock::start(),
        );
        assert!(outer.taken() && inner.taken());
    }

    #[test]
    fn only_the_first_holder_sets_and_only_the_last_gives_back() {
        use super::{first_in, last_out};
        let mut holders = 0;
        assert!(first_in(&mut holders));
        assert!(!first_in(&mut holders));
        assert!(!last_out(&mut holders));
        assert!(last_out(&mut holders));
        assert_eq!(holders, 0);
    }
}
