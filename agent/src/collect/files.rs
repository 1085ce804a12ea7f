//! Files the CNIs leave on the node, read under `--host-root`: the CNI config
//! directory, flanneld's subnet.env and Calico's nodename.
//!
//! Whatever is wrong with a file becomes part of the snapshot (the file was
//! seen, and why it could not be used): it is evidence, not a failure.

use super::{CALICO_NODENAME, CNI_DIR, IP_FORWARD, RUN_FLANNEL_SUBNET_ENV};
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use terway_hybrid_api::snapshot::{CniDir, CniFile, FileState, SubnetEnv};

/// No legitimate CNI config or env file comes near this; a larger file is
/// reported rather than read into memory.
const MAX_FILE: u64 = 1024 * 1024;
/// libcni loads the first loadable file by name, so only the first files by
/// name matter; a directory of thousands (a runaway backup script) costs at
/// most this many reads, and the rest are counted, not read.
const MAX_CNI_FILES: usize = 64;
/// Extensions libcni loads; anything else (`.cilium_bak`, `.bak`) is ignored by the runtime.
const LOADABLE: [&str; 3] = ["conf", "conflist", "json"];

/// Reads a whole (small) regular file; the error says why in words a user knows.
///
/// Opened with `O_NONBLOCK` and checked with `fstat` before any read: opening
/// a FIFO for reading blocks until a writer comes, and reading a FIFO or a
/// character device may never end. `O_NONBLOCK` does not change how a
/// regular file (or a /proc file) is read.
fn read_text(path: &Path) -> Result<String, String> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match fs::metadata(path) {
            // open(2) on a unix socket fails with ENXIO, which says nothing useful.
            Ok(meta) if !meta.is_file() && !meta.is_dir() => not_regular(meta.file_type()).to_owned(),
            _ => e.to_string(),
        })?;
    let kind = file.metadata().map_err(|e| e.to_string())?.file_type();
    if !kind.is_file() {
        return Err(not_regular(kind).to_owned());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!("larger than {MAX_FILE} bytes"));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!("not UTF-8 text (binary file?): invalid byte at offset {}", e.utf8_error().valid_up_to())
    })
}

/// What a file that is not a regular file is, for the snapshot.
fn not_regular(kind: fs::FileType) -> &'static str {
    if kind.is_dir() {
        "is a directory"
    } else if kind.is_fifo() {
        "is a FIFO (named pipe), not a regular file: not read"
    } else if kind.is_socket() {
        "is a socket, not a regular file: not read"
    } else if kind.is_char_device() || kind.is_block_device() {
        "is a device, not a regular file: not read"
    } else {
        "is not a regular file: not read"
    }
}

/// `/run` is where the data lives; `/var/run` is a symlink to it on every
/// modern distribution, but an absolute symlink inside `--host-root` points
/// out of it, so both spellings are tried under the root.
pub fn run_path(host_root: &Path, under_run: &str) -> Option<PathBuf> {
    ["run", "var/run"]
        .iter()
        .map(|dir| host_root.join(dir).join(under_run))
        .find(|p| fs::symlink_metadata(p).is_ok())
}

/// K3s runs its own containerd, pointed at its own CNI directory; nothing
/// of K3s's flannel lands in /etc/cni/net.d.
const K3S_CNI_DIR: &str = "var/lib/rancher/k3s/agent/etc/cni/net.d";

/// `/etc/cni/net.d`; when it holds no usable config, K3s's directory, whose
/// files are named by their path under the host root so the evidence says
/// where they are.
pub fn cni_dir(host_root: &Path) -> CniDir {
    let main = read_cni_dir(host_root, CNI_DIR, "");
    if main.primary().is_some() {
        return main;
    }
    let k3s = read_cni_dir(host_root, K3S_CNI_DIR, &format!("{K3S_CNI_DIR}/"));
    if k3s.primary().is_none() {
        return main;
    }
    let mut files = main.files;
    files.extend(k3s.files);
    CniDir { present: true, error: main.error, files }
}

fn read_cni_dir(host_root: &Path, rel: &str, prefix: &str) -> CniDir {
    let dir = host_root.join(rel);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return CniDir::default(),
        Err(e) => {
            return CniDir { present: true, error: Some(format!("{}: {e}", dir.display())), files: vec![] }
        }
    };
    let (names, total) = first_names(entries.filter_map(Result::ok).map(|e| e.file_name()), MAX_CNI_FILES);
    let files = names
        .iter()
        .map(|name| cni_file(&dir.join(name), &format!("{prefix}{}", name.to_string_lossy())))
        .collect();
    let error = (total > names.len()).then(|| {
        format!(
            "{} holds {total} entries: only the first {MAX_CNI_FILES} by name with a loadable extension \
             and the first {MAX_CNI_FILES} others were read",
            dir.display(),
        )
    });
    CniDir { present: true, error, files }
}

/// The `keep` first names (by name) with a loadable extension and the `keep`
/// first others, sorted, and how many entries there were: memory stays
/// bounded however large the directory is, and a pile of backups cannot hide
/// the config the runtime loads.
fn first_names(names: impl Iterator<Item = OsString>, keep: usize) -> (Vec<OsString>, usize) {
    let mut loadable = std::collections::BTreeSet::new();
    let mut other = std::collections::BTreeSet::new();
    let mut total = 0;
    for name in names {
        total += 1;
        let set = if is_loadable(Path::new(&name)) { &mut loadable } else { &mut other };
        set.insert(name);
        if set.len() > keep {
            set.pop_last();
        }
    }
    let mut all: Vec<OsString> = loadable.into_iter().chain(other).collect();
    all.sort();
    (all, total)
}

fn is_loadable(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| LOADABLE.contains(&e))
}

fn cni_file(path: &Path, name: &str) -> CniFile {
    let mut file = CniFile { name: name.to_owned(), loadable: is_loadable(path), ..CniFile::default() };
    match read_text(path).and_then(|text| parse_cni_config(&text, name.ends_with(".conflist"))) {
        Ok((network, types)) => {
            file.network = network;
            file.plugin_types = types;
        }
        Err(e) => file.error = Some(e),
    }
    file
}

/// The network name and the plugin types of a `.conf` (one plugin) or
/// `.conflist` (a `plugins` chain). Backups are parsed by their content.
pub fn parse_cni_config(text: &str, is_list: bool) -> Result<(Option<String>, Vec<String>), String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = value.as_object().ok_or("not a JSON object")?;
    // Bounded: these strings end up in evidence and check messages.
    let short = |s: &str| crate::text::bounded(s, crate::text::MAX_CONFIG_STRING).into_owned();
    let network = obj.get("name").and_then(|n| n.as_str()).map(short);
    let type_of = |v: &serde_json::Value| v.get("type").and_then(|t| t.as_str()).map(short);
    let types: Vec<String> = match obj.get("plugins") {
        Some(serde_json::Value::Array(plugins)) => plugins.iter().filter_map(type_of).collect(),
        Some(_) => return Err("\"plugins\" is not a list".to_owned()),
        None if is_list => return Err("a .conflist without a \"plugins\" list".to_owned()),
        None => type_of(&value).into_iter().collect(),
    };
    if types.is_empty() {
        return Err("names no plugin \"type\"".to_owned());
    }
    Ok((network, types))
}

pub fn flannel_subnet(host_root: &Path) -> FileState<SubnetEnv> {
    let Some(path) = run_path(host_root, RUN_FLANNEL_SUBNET_ENV) else {
        return FileState::Absent;
    };
    let shown = path.display().to_string();
    match read_text(&path) {
        Ok(text) => FileState::Ok { path: shown, value: parse_subnet_env(&text) },
        Err(error) => FileState::Invalid { path: shown, error },
    }
}

/// `KEY=value` lines as flanneld writes them; anything else is kept as a problem.
pub fn parse_subnet_env(text: &str) -> SubnetEnv {
    let mut env = SubnetEnv::default();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let problem = |what: &str| format!("line {}: {what}: {:?}", n + 1, truncate(line, 80));
        let Some((key, value)) = line.split_once('=') else {
            env.problems.push(problem("not KEY=value"));
            continue;
        };
        match key.trim() {
            "FLANNEL_NETWORK" => env.network = Some(value.to_owned()),
            "FLANNEL_SUBNET" => env.subnet = Some(value.to_owned()),
            "FLANNEL_IPV6_NETWORK" => env.ipv6_network = Some(value.to_owned()),
            "FLANNEL_IPV6_SUBNET" => env.ipv6_subnet = Some(value.to_owned()),
            "FLANNEL_MTU" => match value.parse() {
                Ok(mtu) => env.mtu = Some(mtu),
                Err(_) => env.problems.push(problem("FLANNEL_MTU is not a number")),
            },
            "FLANNEL_IPMASQ" => match value {
                "true" => env.ipmasq = Some(true),
                "false" => env.ipmasq = Some(false),
                _ => env.problems.push(problem("FLANNEL_IPMASQ is not true/false")),
            },
            _ => {} // flanneld adds keys over time: not a problem
        }
    }
    env
}

pub fn calico_nodename(host_root: &Path) -> FileState<String> {
    let path = host_root.join(CALICO_NODENAME);
    if fs::symlink_metadata(&path).is_err() {
        return FileState::Absent;
    }
    let shown = path.display().to_string();
    match read_text(&path) {
        Ok(text) if !text.trim().is_empty() => FileState::Ok { path: shown, value: text.trim().to_owned() },
        Ok(_) => FileState::Invalid { path: shown, error: "empty".to_owned() },
        Err(error) => FileState::Invalid { path: shown, error },
    }
}

/// Pods are routed through the host: without forwarding nothing leaves them.
pub fn ip_forward(host_root: &Path) -> FileState<bool> {
    let path = host_root.join(IP_FORWARD);
    if fs::symlink_metadata(&path).is_err() {
        return FileState::Absent;
    }
    let shown = path.display().to_string();
    match read_text(&path).map(|t| t.trim().to_owned()) {
        Ok(v) if v == "1" => FileState::Ok { path: shown, value: true },
        Ok(v) if v == "0" => FileState::Ok { path: shown, value: false },
        Ok(v) => FileState::Invalid {
            path: shown,
            error: format!("expected 0 or 1, found {:?}", truncate(&v, 20)),
        },
        Err(error) => FileState::Invalid { path: shown, error },
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_types_in_chain_order() {
        let text = r#"{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel","delegate":{}},{"type":"portmap"}]}"#;
        assert_eq!(
            parse_cni_config(text, true).unwrap(),
            (Some("cbr0".into()), vec!["flannel".to_owned(), "portmap".to_owned()])
        );
    }

    #[test]
    fn single_plugin_conf() {
        let text = r#"{"cniVersion":"0.4.0","name":"terway","type":"terway","eniip_virtual_type":"IPVlan"}"#;
        assert_eq!(parse_cni_config(text, false).unwrap().1, vec!["terway".to_owned()]);
    }

    #[test]
    fn malformed_configs_say_why() {
        assert!(parse_cni_config("{not json", false).unwrap_err().starts_with("not valid JSON"));
        assert_eq!(parse_cni_config("[1,2]", false).unwrap_err(), "not a JSON object");
        assert!(parse_cni_config(r#"{"name":"x"}"#, true).unwrap_err().contains("plugins"));
        assert!(parse_cni_config(r#"{"plugins":{}}"#, true).unwrap_err().contains("not a list"));
        assert!(parse_cni_config(r#"{"name":"x"}"#, false).unwrap_err().contains("type"));
    }

    #[test]
    fn subnet_env_keeps_junk_as_problems() {
        let env = parse_subnet_env(
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=abc\ngarbage\nFLANNEL_IPMASQ=true\n",
        );
        assert_eq!(env.network.as_deref(), Some("10.244.0.0/16"));
        assert_eq!(env.subnet.as_deref(), Some("10.244.1.1/24"));
        assert_eq!(env.mtu, None);
        assert_eq!(env.ipmasq, Some(true));
        assert_eq!(env.problems.len(), 2, "{:?}", env.problems);
    }

    #[test]
    fn unreadable_files_become_evidence() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(CNI_DIR);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("10-flannel.conflist"), [0xff, 0xfe, 0x00, 0x01]).unwrap();
        fs::write(dir.join("05-cilium.conflist"), "{\"plugins\": [").unwrap();
        fs::write(
            dir.join("20-calico.conflist.cilium_bak"),
            r#"{"name":"k8s-pod-network","plugins":[{"type":"calico"}]}"#,
        )
        .unwrap();
        fs::create_dir(dir.join("99-dir.conf")).unwrap();
        let cni = cni_dir(root.path());
        let names: Vec<_> = cni.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["05-cilium.conflist", "10-flannel.conflist", "20-calico.conflist.cilium_bak", "99-dir.conf"]
        );
        assert!(cni.files[0].error.as_deref().unwrap().contains("JSON"));
        assert!(cni.files[1].error.as_deref().unwrap().contains("not UTF-8"));
        assert!(!cni.files[2].loadable);
        assert_eq!(cni.files[2].plugin_types, ["calico"]);
        assert_eq!(cni.files[3].error.as_deref(), Some("is a directory"));
        assert!(cni.primary().is_none(), "no loadable file parses");
    }

    #[test]
    fn k3s_cni_dir_is_read_when_etc_cni_has_no_config() {
        let root = tempfile::tempdir().unwrap();
        let k3s = root.path().join(K3S_CNI_DIR);
        fs::create_dir_all(&k3s).unwrap();
        fs::write(k3s.join("10-flannel.conflist"), r#"{"name":"cbr0","plugins":[{"type":"flannel"}]}"#)
            .unwrap();
        let dir = cni_dir(root.path());
        let primary = dir.primary().expect("K3s's config is found");
        assert_eq!(primary.name, format!("{K3S_CNI_DIR}/10-flannel.conflist"));
        // A usable /etc/cni/net.d wins.
        let etc = root.path().join(CNI_DIR);
        fs::create_dir_all(&etc).unwrap();
        fs::write(etc.join("10-calico.conflist"), r#"{"name":"k8s","plugins":[{"type":"calico"}]}"#).unwrap();
        let dir = cni_dir(root.path());
        assert_eq!(dir.primary().unwrap().name, "10-calico.conflist");
        assert_eq!(dir.files.len(), 1);
    }

    /// A FIFO blocks `open(2)` for reading until a writer comes: it must be
    /// refused at once, wherever the agent expects a regular file.
    #[test]
    fn fifos_are_refused_without_blocking() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(CNI_DIR);
        fs::create_dir_all(&dir).unwrap();
        fs::create_dir_all(root.path().join("proc/sys/net/ipv4")).unwrap();
        fs::create_dir_all(root.path().join("var/lib/calico")).unwrap();
        fs::create_dir_all(root.path().join("run/flannel")).unwrap();
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o644);
        for rel in [
            "etc/cni/net.d/10-calico.conflist",
            "proc/sys/net/ipv4/ip_forward",
            "var/lib/calico/nodename",
            "run/flannel/subnet.env",
        ] {
            nix::unistd::mkfifo(&root.path().join(rel), mode).unwrap();
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let path = root.path().to_owned();
        std::thread::spawn(move || {
            let _ =
                tx.send((cni_dir(&path), ip_forward(&path), calico_nodename(&path), flannel_subnet(&path)));
        });
        let (cni, fwd, nodename, subnet) =
            rx.recv_timeout(std::time::Duration::from_secs(5)).expect("reading FIFOs returns at once");
        assert_eq!(cni.files.len(), 1);
        assert!(cni.files[0].error.as_deref().unwrap().contains("FIFO"), "{cni:?}");
        for state in [format!("{fwd:?}"), format!("{nodename:?}"), format!("{subnet:?}")] {
            assert!(state.contains("Invalid") && state.contains("is a FIFO"), "{state}");
        }
    }

    #[test]
    fn devices_and_sockets_are_not_read() {
        assert!(read_text(Path::new("/dev/zero")).unwrap_err().contains("is a device"));
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert_eq!(read_text(&sock).unwrap_err(), "is a socket, not a regular file: not read");
    }

    /// 10,000 files: at most `2 * MAX_CNI_FILES` are read, the loadable config
    /// behind thousands of backups is still found, and the directory says
    /// how many entries it held.
    #[test]
    fn huge_cni_dir_is_read_up_to_the_cap() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(CNI_DIR);
        fs::create_dir_all(&dir).unwrap();
        for i in 0..9_999 {
            fs::write(dir.join(format!("00-{i:05}.conflist.bak")), "{}").unwrap();
        }
        fs::write(dir.join("10-calico.conflist"), r#"{"name":"k8s","plugins":[{"type":"calico"}]}"#).unwrap();
        let cni = cni_dir(root.path());
        assert_eq!(cni.files.len(), MAX_CNI_FILES + 1);
        assert_eq!(cni.primary().unwrap().name, "10-calico.conflist");
        assert!(cni.error.as_deref().unwrap().contains("holds 10000 entries"), "{:?}", cni.error);
        assert_eq!(cni.files[0].name, "00-00000.conflist.bak", "the first by name are kept");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1_000))]

            /// A conflist of any plugin types parses to exactly those types,
            /// in order, each cut at `MAX_CONFIG_STRING`.
            #[test]
            fn conflist_types_are_kept_in_order_and_bounded(
                name in "\\PC{0,40}",
                types in proptest::collection::vec("\\PC{1,200}", 1..12),
            ) {
                let plugins: Vec<serde_json::Value> = types.iter().map(|t| serde_json::json!({"type": t})).collect();
                let text = serde_json::json!({"name": name, "plugins": plugins}).to_string();
                let (network, got) = parse_cni_config(&text, true).unwrap();
                prop_assert_eq!(network.as_deref(), Some(name.as_str()));
                prop_assert_eq!(got.len(), types.len());
                for (got, want) in got.iter().zip(&types) {
                    prop_assert_eq!(got, &crate::text::bounded(want, crate::text::MAX_CONFIG_STRING).into_owned());
                }
            }

            /// Bytes that are not a JSON object with a plugin type never
            /// parse, and the error says which of the three it is.
            #[test]
            fn non_configs_are_refused_with_a_reason(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                let text = String::from_utf8_lossy(&bytes);
                match parse_cni_config(&text, false) {
                    Ok((_, types)) => {
                        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                        prop_assert!(value.is_object() && !types.is_empty());
                    }
                    Err(e) => prop_assert!(
                        e.starts_with("not valid JSON") || e == "not a JSON object"
                            || e.contains("plugins") || e.contains("type"),
                        "{}", e
                    ),
                }
            }

            /// flanneld's keys come back as written; every other line that is
            /// neither blank, a comment nor `KEY=value` is one problem.
            #[test]
            fn subnet_env_round_trips_and_counts_junk(
                mtu in 68u32..65536,
                ipmasq in any::<bool>(),
                junk in proptest::collection::vec("[a-z ]{1,30}", 0..5),
            ) {
                let mut text = format!(
                    "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU={mtu}\nFLANNEL_IPMASQ={ipmasq}\n"
                );
                for j in &junk {
                    text.push_str(j);
                    text.push('\n');
                }
                let env = parse_subnet_env(&text);
                prop_assert_eq!(env.network.as_deref(), Some("10.244.0.0/16"));
                prop_assert_eq!(env.subnet.as_deref(), Some("10.244.3.1/24"));
                prop_assert_eq!((env.mtu, env.ipmasq), (Some(mtu), Some(ipmasq)));
                let junk_lines = junk.iter().filter(|j| !j.trim().is_empty()).count();
                prop_assert_eq!(env.problems.len(), junk_lines, "{:?}", env.problems);
                for p in &env.problems {
                    prop_assert!(p.len() < 200, "a problem quotes at most 80 characters: {}", p);
                }
            }
        }
    }

    #[test]
    fn oversized_file_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("big");
        fs::write(&path, vec![b' '; (MAX_FILE + 10) as usize]).unwrap();
        assert!(read_text(&path).unwrap_err().starts_with("larger than"));
    }
}
