//! How a long-running Strata process (`strata up`, `strata run`, the claims benchmark) holds
//! its memory: the allocator (mimalloc) keeps what it has freed for reuse instead of handing it
//! back to the operating system, and maps its heap with transparent huge pages.
//!
//! Why: the embedded control plane and the controllers touch their objects all over a heap of
//! several hundred megabytes. With 4 KiB pages every cold object also costs a page-table walk,
//! and the page tables of a heap that grows with the number of objects outgrow the caches that
//! hold them, so each object gets dearer as there are more of them (our reading: the work per
//! claim counted by callgrind, which does not simulate address translation, is the same at
//! 500 and 5,000 claims). With 2 MiB pages a heap of 800 MB is 400 translations. Measured
//! (README, Performance): at 10,000 claims the CPU per claim fell by 7 % in median over 16
//! alternating rounds, at 1,000 it did not move, and the resident size grew by about 40 MB.
//! Huge pages are only cheap if the allocator does not give memory back: a purged range faulted
//! in again costs the kernel a fresh 2 MiB of zeroes (13 % of the claims benchmark's CPU at
//! 10,000 claims when that happened), so the two settings go together, and without them the
//! process keeps small pages as before.
//!
//! mimalloc reads its options from the environment as it starts, before `main`; setting them
//! from inside would need its C API (`unsafe`, which this workspace forbids) and would come after
//! its first arena is mapped. So [`tune_memory`] starts the same binary again in place of this
//! one (`exec`: the same process id, arguments and everything else) with the options in its
//! environment. An operator's own choice wins: when any `MIMALLOC_*` variable is set, nothing is
//! restarted and mimalloc runs with what was given.

#[cfg(target_os = "linux")]
use std::ffi::OsStr;

/// mimalloc's options for a long-running process: never purge freed memory, back the heap
/// with transparent huge pages (`madvise`, for kernels whose THP mode is `madvise`).
pub const ALLOCATOR_SETTINGS: [(&str, &str); 2] = [
    ("MIMALLOC_PURGE_DELAY", "-1"),
    ("MIMALLOC_ALLOW_LARGE_OS_PAGES", "1"),
];

/// Whether the environment holds any of mimalloc's options (the operator's choice).
#[cfg(target_os = "linux")]
fn allocator_configured() -> bool {
    std::env::vars_os().any(|(name, _)| {
        name.to_str()
            .is_some_and(|name| name.starts_with("MIMALLOC_"))
    })
}

/// Whether this process runs with freed memory kept (what huge pages need).
#[cfg(target_os = "linux")]
fn purging_off() -> bool {
    std::env::var_os("MIMALLOC_PURGE_DELAY").as_deref() == Some(OsStr::new("-1"))
}

/// Call first in `main` of a long-running process, before any thread starts. Restarts the
/// process with [`ALLOCATOR_SETTINGS`] unless mimalloc's options are already in the
/// environment; returns when they are (or when the restart is impossible: the binary is gone,
/// or `exec` fails, which is said on stderr). Then, unless freed memory is kept, turns
/// transparent huge pages off for the process, as every Strata process did before.
pub fn tune_memory() {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        if !allocator_configured() {
            let mut args = std::env::args_os();
            let arg0 = args.next();
            match std::env::current_exe() {
                Ok(exe) => {
                    let mut command = std::process::Command::new(exe);
                    if let Some(arg0) = arg0 {
                        command.arg0(arg0);
                    }
                    let error = command.args(args).envs(ALLOCATOR_SETTINGS).exec();
                    eprintln!(
                        "strata: cannot restart with the allocator's settings ({error}); \
                         running with small pages"
                    );
                }
                Err(error) => eprintln!(
                    "strata: cannot find this binary to restart with the allocator's settings \
                     ({error}); running with small pages"
                ),
            }
        }
        if !purging_off() {
            small_pages_only();
        }
    }
}

/// Turns transparent huge pages off for this process: with mimalloc purging freed memory, each
/// purged range faulted back in would be a zeroed 2 MiB page. Where the kernel refuses, nothing
/// changes.
pub fn small_pages_only() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}
