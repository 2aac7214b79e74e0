//! A simulated disk for crash tests.
//!
//! [`SimFs`] performs every operation on the real files under its root (so
//! readers that map or read them see what a real process would) and keeps,
//! beside them, a model of what a power loss would leave: for each file the
//! bytes as of its last fsync, for each directory the entries as of its last
//! fsync. [`SimFs::power_loss`] rewrites the real directory tree to that
//! model. Directories and files are tracked as inodes, so renaming a
//! directory moves its children the way a real file system does.
//!
//! Faults: [`Fault::CrashAt`] makes the `n`-th operation fail (a write
//! fails after writing half its bytes) and every later one too — the
//! process is dead from that point, and its memory no longer matters;
//! [`Fault::DiskFull`] makes writes fail with `StorageFull` once a byte
//! budget is spent, leaving the rest working.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{FileHandle, Fs};

/// A fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Operation number `n` (0-based, counting every operation that changes
    /// the disk since the fault was set) fails, and so does every later one.
    CrashAt(u64),
    /// Writes fail with [`io::ErrorKind::StorageFull`] once `bytes` more
    /// bytes have been written.
    DiskFull {
        /// Bytes that still fit.
        bytes: u64,
    },
}

type Ino = u64;

/// A directory's entries: name → inode.
type Entries = BTreeMap<OsString, Ino>;

#[derive(Debug)]
enum Inode {
    Dir {
        live: BTreeMap<OsString, Ino>,
        durable: BTreeMap<OsString, Ino>,
    },
    File {
        /// The content as of the last fsync.
        durable: Vec<u8>,
    },
}

#[derive(Debug)]
struct State {
    inodes: HashMap<Ino, Inode>,
    next_ino: Ino,
    ops: u64,
    fault: Option<Fault>,
    fault_hit: bool,
    /// Free space reported when no [`Fault::DiskFull`] is armed.
    available: Option<u64>,
    halted: bool,
    torn_tails: bool,
    rng: u64,
}

const ROOT: Ino = 0;

/// A simulated disk over the real directory tree at a root. See the module
/// documentation.
#[derive(Debug, Clone)]
pub struct SimFs {
    root: PathBuf,
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct SimFile {
    file: File,
    ino: Ino,
    state: Arc<Mutex<State>>,
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: the disk no longer accepts operations")
}

impl State {
    /// A state in which everything under `root` is durable.
    fn scanned(root: &Path) -> io::Result<State> {
        let mut st = State {
            inodes: HashMap::new(),
            next_ino: ROOT + 1,
            ops: 0,
            fault: None,
            available: None,
            fault_hit: false,
            halted: false,
            torn_tails: false,
            rng: 0x5eed,
        };
        st.inodes.insert(
            ROOT,
            Inode::Dir {
                live: BTreeMap::new(),
                durable: BTreeMap::new(),
            },
        );
        scan(&mut st, ROOT, root)?;
        Ok(st)
    }

    /// Counts an operation and says whether it may run.
    fn admit(&mut self) -> io::Result<()> {
        if self.halted {
            return Err(crashed());
        }
        let n = self.ops;
        self.ops += 1;
        if self.fault == Some(Fault::CrashAt(n)) {
            self.halted = true;
            self.fault_hit = true;
            return Err(io::Error::other(format!(
                "simulated crash at operation {n}"
            )));
        }
        Ok(())
    }

    /// Admits a write of `len` bytes: how many of them reach the file, and
    /// the error to report after writing those. A crash tears the write in
    /// half; a full disk writes what still fits.
    fn admit_write(&mut self, len: usize) -> (usize, Option<io::Error>) {
        let was_halted = self.halted;
        if let Err(e) = self.admit() {
            return (if was_halted { 0 } else { len / 2 }, Some(e));
        }
        if let Some(Fault::DiskFull { bytes }) = self.fault {
            let fits = bytes.min(len as u64);
            self.fault = Some(Fault::DiskFull {
                bytes: bytes - fits,
            });
            if fits < len as u64 {
                self.fault_hit = true;
                return (
                    fits as usize,
                    Some(io::Error::new(
                        io::ErrorKind::StorageFull,
                        "simulated full disk",
                    )),
                );
            }
        }
        (len, None)
    }

    fn dir_mut(&mut self, ino: Ino) -> io::Result<(&mut Entries, &mut Entries)> {
        match self.inodes.get_mut(&ino) {
            Some(Inode::Dir { live, durable }) => Ok((live, durable)),
            _ => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            )),
        }
    }

    fn lookup(&self, dir: Ino, name: &OsString) -> Option<Ino> {
        match self.inodes.get(&dir) {
            Some(Inode::Dir { live, .. }) => live.get(name).copied(),
            _ => None,
        }
    }

    fn new_inode(&mut self, inode: Inode) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, inode);
        ino
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl SimFs {
    /// Starts simulating the tree at `root` (which must exist); everything
    /// already there counts as durable.
    pub fn new(root: &Path) -> io::Result<SimFs> {
        Ok(SimFs {
            root: root.to_path_buf(),
            state: Arc::new(Mutex::new(State::scanned(root)?)),
        })
    }

    /// A simulated file system over `root` as the shared handle type.
    pub fn shared(&self) -> crate::FsRef {
        Arc::new(self.clone())
    }

    /// Arms a fault; operations are counted from zero again.
    pub fn set_fault(&self, fault: Option<Fault>) {
        let mut st = self.lock();
        st.fault = fault;
        st.fault_hit = false;
        st.ops = 0;
    }

    /// Makes the disk report `bytes` of free space (without a
    /// [`Fault::DiskFull`] armed: writes still succeed), as a disk too
    /// small for some task would; `None`: unknown.
    pub fn set_available(&self, bytes: Option<u64>) {
        self.lock().available = bytes;
    }

    /// Whether the armed fault has fired.
    pub fn fault_hit(&self) -> bool {
        self.lock().fault_hit
    }

    /// Operations counted since the fault was last set.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Keep a random prefix of each file's unsynced appended bytes at a
    /// power loss (a torn write), instead of none of them; `seed` fixes the
    /// choice.
    pub fn set_torn_tails(&self, on: bool, seed: u64) {
        let mut st = self.lock();
        st.torn_tails = on;
        st.rng = seed;
    }

    /// Makes every later operation fail, as if the process had died.
    pub fn halt(&self) {
        self.lock().halted = true;
    }

    /// Rewrites the real tree to what a power loss would leave: files with
    /// their fsynced bytes (plus, with torn tails, part of the rest),
    /// directories with their fsynced entries. The simulation then starts
    /// over from that state, with no fault armed.
    pub fn power_loss(&self) -> io::Result<()> {
        let mut st = self.lock();
        // Where each inode lives now, to read unsynced bytes for torn tails.
        let mut live_paths = HashMap::new();
        collect_live(&st, ROOT, &self.root, &mut live_paths);
        let mut plan: Vec<(PathBuf, Option<Vec<u8>>)> = Vec::new();
        let mut stack = vec![(ROOT, self.root.clone())];
        while let Some((dir, path)) = stack.pop() {
            let entries: Vec<(OsString, Ino)> = match st.inodes.get(&dir) {
                Some(Inode::Dir { durable, .. }) => {
                    durable.iter().map(|(n, i)| (n.clone(), *i)).collect()
                }
                _ => Vec::new(),
            };
            for (name, ino) in entries {
                let p = path.join(&name);
                match st.inodes.get(&ino) {
                    Some(Inode::Dir { .. }) => {
                        plan.push((p.clone(), None));
                        stack.push((ino, p));
                    }
                    Some(Inode::File { durable }) => {
                        let mut bytes = durable.clone();
                        let synced = bytes.len();
                        if st.torn_tails
                            && let Some(now) = live_paths.get(&ino)
                            && let Ok(real) = std::fs::read(now)
                            && real.len() > bytes.len()
                            && real.starts_with(&bytes)
                        {
                            let extra = real.len() - bytes.len();
                            let keep = (st.next_random() % (extra as u64 + 1)) as usize;
                            bytes.extend_from_slice(
                                real.get(synced..synced + keep).unwrap_or_default(),
                            );
                        }
                        plan.push((p, Some(bytes)));
                    }
                    None => {}
                }
            }
        }
        for entry in std::fs::read_dir(&self.root)? {
            let p = entry?.path();
            if p.is_dir() {
                std::fs::remove_dir_all(&p)?;
            } else {
                std::fs::remove_file(&p)?;
            }
        }
        plan.sort_by(|a, b| a.0.cmp(&b.0));
        for (p, content) in plan {
            match content {
                None => std::fs::create_dir_all(&p)?,
                Some(bytes) => std::fs::write(&p, bytes)?,
            }
        }
        let mut fresh = State::scanned(&self.root)?;
        fresh.rng = st.rng;
        fresh.torn_tails = st.torn_tails;
        *st = fresh;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The parent directory inode and final name of `path`.
    fn parent_of(&self, st: &State, path: &Path) -> io::Result<(Ino, OsString)> {
        let rel = path.strip_prefix(&self.root).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is outside the simulated root {}",
                    path.display(),
                    self.root.display()
                ),
            )
        })?;
        let mut names: Vec<OsString> = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(n) => names.push(n.to_os_string()),
                Component::CurDir => {}
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("unsupported path {}", path.display()),
                    ));
                }
            }
        }
        let name = names
            .pop()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the root has no parent"))?;
        let mut dir = ROOT;
        for n in &names {
            dir = st.lookup(dir, n).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} not found", path.display()),
                )
            })?;
        }
        Ok((dir, name))
    }

    fn resolve(&self, st: &State, path: &Path) -> io::Result<Ino> {
        if path == self.root {
            return Ok(ROOT);
        }
        let (dir, name) = self.parent_of(st, path)?;
        st.lookup(dir, &name).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} not found", path.display()),
            )
        })
    }

    fn open_file(
        &self,
        path: &Path,
        opts: &OpenOptions,
        new: bool,
    ) -> io::Result<Arc<dyn FileHandle>> {
        let mut st = self.lock();
        st.admit()?;
        let (dir, name) = self.parent_of(&st, path)?;
        let file = opts.open(path)?;
        let ino = match st.lookup(dir, &name) {
            Some(ino) if !new => ino,
            _ => {
                let ino = st.new_inode(Inode::File {
                    durable: Vec::new(),
                });
                st.dir_mut(dir)?.0.insert(name, ino);
                ino
            }
        };
        Ok(Arc::new(SimFile {
            file,
            ino,
            state: Arc::clone(&self.state),
        }))
    }
}

fn scan(st: &mut State, dir: Ino, path: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let p = entry.path();
        let ino = if entry.file_type()?.is_dir() {
            let ino = st.new_inode(Inode::Dir {
                live: BTreeMap::new(),
                durable: BTreeMap::new(),
            });
            scan(st, ino, &p)?;
            ino
        } else {
            let durable = std::fs::read(&p)?;
            st.new_inode(Inode::File { durable })
        };
        let (live, durable) = st.dir_mut(dir)?;
        live.insert(entry.file_name(), ino);
        durable.insert(entry.file_name(), ino);
    }
    Ok(())
}

fn collect_live(st: &State, dir: Ino, path: &Path, out: &mut HashMap<Ino, PathBuf>) {
    if let Some(Inode::Dir { live, .. }) = st.inodes.get(&dir) {
        for (name, &ino) in live {
            let p = path.join(name);
            if matches!(st.inodes.get(&ino), Some(Inode::Dir { .. })) {
                collect_live(st, ino, &p, out);
            }
            out.insert(ino, p);
        }
    }
}

impl Fs for SimFs {
    /// What a [`Fault::DiskFull`] still lets through; else what
    /// [`SimFs::set_available`] set (unknown by default).
    fn available_space(&self, _path: &Path) -> io::Result<Option<u64>> {
        let st = self.lock();
        Ok(match st.fault {
            Some(Fault::DiskFull { bytes }) => Some(bytes),
            _ => st.available,
        })
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let mut o = OpenOptions::new();
        o.read(true).write(true).create(true).truncate(true);
        self.open_file(path, &o, false)
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let mut o = OpenOptions::new();
        o.read(true).append(true).create_new(true);
        self.open_file(path, &o, true)
    }

    fn open_append(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        {
            let st = self.lock();
            self.resolve(&st, path)?;
        }
        let mut o = OpenOptions::new();
        o.read(true).append(true);
        self.open_file(path, &o, false)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.admit()?;
        let (fdir, fname) = self.parent_of(&st, from)?;
        let (tdir, tname) = self.parent_of(&st, to)?;
        std::fs::rename(from, to)?;
        let ino =
            st.dir_mut(fdir)?.0.remove(&fname).ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, "rename source untracked")
            })?;
        st.dir_mut(tdir)?.0.insert(tname, ino);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.admit()?;
        let (dir, name) = self.parent_of(&st, path)?;
        std::fs::remove_file(path)?;
        st.dir_mut(dir)?.0.remove(&name);
        Ok(())
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.admit()?;
        let (dir, name) = self.parent_of(&st, path)?;
        std::fs::create_dir(path)?;
        let ino = st.new_inode(Inode::Dir {
            live: BTreeMap::new(),
            durable: BTreeMap::new(),
        });
        st.dir_mut(dir)?.0.insert(name, ino);
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let rel = path.strip_prefix(&self.root).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is outside the simulated root", path.display()),
            )
        })?;
        let mut p = self.root.clone();
        for c in rel.components() {
            p.push(c);
            let exists = {
                let st = self.lock();
                self.resolve(&st, &p).is_ok()
            };
            if !exists {
                self.create_dir(&p)?;
            }
        }
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.admit()?;
        let (dir, name) = self.parent_of(&st, path)?;
        std::fs::remove_dir_all(path)?;
        st.dir_mut(dir)?.0.remove(&name);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.admit()?;
        let ino = self.resolve(&st, path)?;
        let (live, durable) = st.dir_mut(ino)?;
        *durable = live.clone();
        Ok(())
    }
}

impl SimFile {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl FileHandle for SimFile {
    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        let (n, err) = self.lock().admit_write(buf.len());
        (&self.file).write_all(buf.get(..n).unwrap_or_default())?;
        err.map_or(Ok(()), Err)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let (n, err) = self.lock().admit_write(buf.len());
        self.file
            .write_all_at(buf.get(..n).unwrap_or_default(), offset)?;
        err.map_or(Ok(()), Err)
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.lock();
        st.admit()?;
        // The real fsync is skipped: only the model's durability matters,
        // and tests run faster without it.
        let len = self.file.metadata()?.len();
        let mut bytes = vec![0u8; len as usize];
        self.file.read_exact_at(&mut bytes, 0)?;
        if let Some(Inode::File { durable }) = st.inodes.get_mut(&self.ino) {
            *durable = bytes;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.lock().admit()?;
        self.file.set_len(len)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        // Reads change nothing on disk: never a fault.
        self.file.read_at(buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        self.lock().admit()?;
        crate::punch_hole(&self.file, offset, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, SimFs) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("old"), b"kept").unwrap();
        let fs = SimFs::new(dir.path()).unwrap();
        (dir, fs)
    }

    #[test]
    fn unsynced_bytes_are_lost_and_synced_ones_kept() {
        let (dir, fs) = setup();
        let root = dir.path();
        let f = fs.create_new(&root.join("log")).unwrap();
        fs.sync_dir(root).unwrap();
        f.write_all(b"durable").unwrap();
        f.sync_data().unwrap();
        f.write_all(b" lost").unwrap();
        assert_eq!(std::fs::read(root.join("log")).unwrap(), b"durable lost");
        fs.power_loss().unwrap();
        assert_eq!(std::fs::read(root.join("log")).unwrap(), b"durable");
        assert_eq!(std::fs::read(root.join("old")).unwrap(), b"kept");
    }

    #[test]
    fn entries_need_a_directory_fsync() {
        let (dir, fs) = setup();
        let root = dir.path();
        let f = fs.create(&root.join("a.tmp")).unwrap();
        f.write_all(b"x").unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(root).unwrap();
        fs.rename(&root.join("a.tmp"), &root.join("a")).unwrap();
        fs.remove_file(&root.join("old")).unwrap();
        fs.power_loss().unwrap();
        // The rename and the removal were never made durable.
        assert!(!root.join("a").exists());
        assert_eq!(std::fs::read(root.join("a.tmp")).unwrap(), b"x");
        assert!(root.join("old").exists());

        fs.rename(&root.join("a.tmp"), &root.join("a")).unwrap();
        fs.sync_dir(root).unwrap();
        fs.power_loss().unwrap();
        assert!(!root.join("a.tmp").exists());
        assert_eq!(std::fs::read(root.join("a")).unwrap(), b"x");
    }

    #[test]
    fn renamed_directories_take_their_children() {
        let (dir, fs) = setup();
        let root = dir.path();
        fs.create_dir_all(&root.join("c/wal")).unwrap();
        let f = fs.create_new(&root.join("c/wal/1.log")).unwrap();
        f.write_all(b"rec").unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(&root.join("c/wal")).unwrap();
        fs.sync_dir(&root.join("c")).unwrap();
        fs.sync_dir(root).unwrap();
        fs.rename(&root.join("c"), &root.join("d")).unwrap();
        fs.sync_dir(root).unwrap();
        fs.power_loss().unwrap();
        assert_eq!(std::fs::read(root.join("d/wal/1.log")).unwrap(), b"rec");
        assert!(!root.join("c").exists());
    }

    #[test]
    fn a_crash_point_tears_the_write_and_stops_everything() {
        let (dir, fs) = setup();
        let root = dir.path();
        let f = fs.create_new(&root.join("log")).unwrap();
        fs.set_fault(Some(Fault::CrashAt(1)));
        f.write_all(b"0123").unwrap();
        assert!(f.write_all(b"4567").is_err());
        assert!(fs.fault_hit());
        assert_eq!(std::fs::read(root.join("log")).unwrap(), b"012345");
        assert!(f.sync_data().is_err());
        assert!(fs.sync_dir(root).is_err());
        fs.power_loss().unwrap();
        // Never synced into the directory: gone. The file system works again.
        assert!(!root.join("log").exists());
        fs.create_dir(&root.join("x")).unwrap();
    }

    #[test]
    fn a_full_disk_fails_writes_with_storage_full() {
        let (dir, fs) = setup();
        let f = fs.create(&dir.path().join("f")).unwrap();
        fs.set_fault(Some(Fault::DiskFull { bytes: 6 }));
        f.write_all(b"1234").unwrap();
        let e = f.write_all(b"5678").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"123456");
        // Other operations still work.
        f.sync_data().unwrap();
        fs.sync_dir(dir.path()).unwrap();
    }

    #[test]
    fn torn_tails_keep_a_prefix_of_the_unsynced_bytes() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let (dir, fs) = setup();
            let root = dir.path();
            fs.set_torn_tails(true, seed);
            let f = fs.create_new(&root.join("log")).unwrap();
            fs.sync_dir(root).unwrap();
            f.write_all(b"abc").unwrap();
            f.sync_data().unwrap();
            f.write_all(b"defgh").unwrap();
            fs.power_loss().unwrap();
            let got = std::fs::read(root.join("log")).unwrap();
            assert!(b"abcdefgh".starts_with(&got) && got.len() >= 3, "{got:?}");
            seen.insert(got.len());
        }
        assert!(seen.len() > 3, "torn lengths vary with the seed: {seen:?}");
    }

    #[test]
    fn paths_outside_the_root_are_refused() {
        let (_dir, fs) = setup();
        let other = tempfile::tempdir().unwrap();
        let e = fs.create(&other.path().join("f")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
