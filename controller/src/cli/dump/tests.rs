use super::kinds::TERWAY_HYBRID_API;
use super::*;
use base64::Engine;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use proptest::prelude::*;
use std::fs;
use std::io::Write;
use terway_hybrid_api::names::{ACCESS_KEY_ID, ACCESS_KEY_SECRET};
use terway_hybrid_api::{NodeNetworkReport, Scenario, TerwayRollout};

/// Stands for an AccessKey secret: it must never show up outside the loader.
const SECRET: &str = "LTAI5tQpZ8rSecretValue";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/dump-loader").join(name)
}

/// The names in one of the view's per-node lists.
fn names<T: Resource>(list: &[std::sync::Arc<T>]) -> Vec<&str> {
    list.iter().map(|o| o.meta().name.as_deref().unwrap_or("")).collect()
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

fn error_of(path: &Path) -> String {
    match load(path) {
        Ok(view) => panic!("{} loaded: {view:?}", path.display()),
        Err(e) => e.to_string(),
    }
}

/// A file named `name` holding `text`, in a fresh directory.
fn temp_file(name: &str, text: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    fs::File::create(&path).unwrap().write_all(text).unwrap();
    (dir, path)
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn api_versions_match_the_types() {
    assert_eq!(NodeNetworkReport::api_version(&()), TERWAY_HYBRID_API);
    assert_eq!(TerwayRollout::api_version(&()), TERWAY_HYBRID_API);
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(base64(SECRET.as_bytes()).len() % 4, 0);
}

#[test]
fn multi_document_yaml_fills_every_part_of_the_view() {
    let path = fixture("multi-doc.yaml");
    let (view, summary) = load_with_summary(&path).unwrap();
    assert_eq!(names(&view.nodes), ["node-a"]);
    assert_eq!(
        view.daemon_sets.iter().map(|d| d.metadata.name.as_deref()).collect::<Vec<_>>(),
        [Some("calico-node")]
    );
    assert_eq!(names(&view.pods), ["calico-node-abcde"]);
    let taint = &view.nodes[0].spec.as_ref().unwrap().taints.as_ref().unwrap()[0];
    assert_eq!(taint.effect, "NoSchedule");
    let eni = view.eni_config.as_ref().unwrap();
    assert!(eni.data.as_ref().unwrap()["eni_conf"].contains("vsw-1"));
    let service = view.kubernetes_service.as_ref().unwrap();
    assert_eq!(service.spec.as_ref().unwrap().cluster_ip.as_deref(), Some("192.168.0.1"));
    let installation = view.installation.as_ref().unwrap();
    assert_eq!(installation.data["spec"]["calicoNetwork"]["bgp"], "Enabled");
    assert_eq!(view.rollout.as_ref().unwrap().spec.max_unavailable, IntOrString::Int(2));
    assert!(view.reports.is_empty() && view.addon_secret.is_none());
    assert_eq!(
        summary.loaded,
        counts(&[
            ("apps/v1 DaemonSet", 1),
            ("operator.tigera.io/v1 Installation", 1),
            ("terway-hybrid.io/v1alpha1 TerwayRollout", 1),
            ("v1 ConfigMap", 1),
            ("v1 Node", 1),
            ("v1 Pod", 1),
            ("v1 Service", 1),
        ])
    );
    // Other ConfigMaps and Services, and kinds the view has no place for.
    assert_eq!(summary.ignored, counts(&[("apps/v1 Deployment", 1), ("v1 ConfigMap", 1), ("v1 Service", 1)]));
    assert!(summary.duplicates.is_empty());
    assert_eq!(summary.files, [path]);
    assert_eq!(summary.objects(), 10);
}

#[test]
fn kubectl_json_list_is_read_item_by_item() {
    let (view, summary) = load_with_summary(&fixture("kubectl-list.json")).unwrap();
    assert_eq!(names(&view.nodes), ["node-b"]);
    assert_eq!(names(&view.reports), ["node-b"]);
    assert_eq!(view.reports[0].status.as_ref().unwrap().scenario, Scenario::Bgp);
    assert_eq!(names(&view.pods), ["terway-hybrid-agent-x1"]);
    let secret = view.addon_secret.as_ref().unwrap();
    assert!(secret.non_empty(ACCESS_KEY_ID));
    assert!(!secret.non_empty(ACCESS_KEY_SECRET));
    assert_eq!(secret.keys.len(), 2);
    // The other Secret is not even parsed: its data is not base64.
    assert_eq!(summary.ignored, counts(&[("v1 ConfigMap", 1), ("v1 Secret", 1)]));
}

#[test]
fn items_of_a_typed_list_take_the_list_kind() {
    let (view, summary) = load_with_summary(&fixture("nodelist-typed.json")).unwrap();
    assert_eq!(names(&view.nodes), ["node-c", "node-d"]);
    let info = view.nodes[0].status.as_ref().unwrap().node_info.as_ref().unwrap();
    assert_eq!(info.kernel_version, "4.19.91-26.al7.x86_64");
    assert_eq!(summary.loaded, counts(&[("v1 Node", 2)]));
}

#[test]
fn items_wait_for_a_list_kind_printed_after_them() {
    let view = load(&fixture("podlist-kind-last.json")).unwrap();
    // The item with its own kind is read at once, the other one at the end.
    assert_eq!(names(&view.pods), ["calico-node-p2", "calico-node-p1"]);
}

#[test]
fn typed_list_items_in_yaml_take_the_list_kind_too() {
    let text = "apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: p1, namespace: ns}\n  spec: {containers: [{name: c}]}\n";
    let (_dir, path) = temp_file("pods.yaml", text.as_bytes());
    assert_eq!(names(&load(&path).unwrap().pods), ["p1"]);
}

#[test]
fn directory_is_read_recursively_in_path_order_skipping_hidden_and_other_files() {
    let root = fixture("tree");
    let (view, summary) = load_with_summary(&root).unwrap();
    assert_eq!(
        summary.files,
        [root.join("nodes.yaml"), root.join("sub/deeper/node-again.yml"), root.join("sub/pods.json")]
    );
    // node-1 read twice: the later file wins, in the first one's place.
    assert_eq!(names(&view.nodes), ["node-1", "node-2"]);
    assert_eq!(view.nodes[0].metadata.labels.as_ref().unwrap()["version"], "second");
    assert_eq!(names(&view.pods), ["p1", "p2"]);
    assert_eq!(summary.loaded, counts(&[("v1 Node", 2), ("v1 Pod", 2)]));
    assert_eq!(summary.duplicates, counts(&[("v1 Node", 1)]));
}

#[test]
fn duplicate_singletons_keep_the_last_one() {
    let cm = |v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: eni-config, namespace: kube-system}}\ndata: {{v: '{v}'}}\n")
    };
    let text = format!("{}---\n{}", cm("1"), cm("2"));
    let (_dir, path) = temp_file("eni.yaml", text.as_bytes());
    let (view, summary) = load_with_summary(&path).unwrap();
    assert_eq!(view.eni_config.unwrap().data.unwrap()["v"], "2");
    assert_eq!(summary.duplicates, counts(&[("v1 ConfigMap", 1)]));
}

#[test]
fn a_file_given_explicitly_is_read_whatever_its_extension() {
    assert_eq!(names(&load(&fixture("node.txt")).unwrap().nodes), ["from-a-txt-file"]);
}

#[test]
fn json_documents_arrays_and_byte_order_mark() {
    let text = concat!(
        "\u{feff}[{\"apiVersion\": \"v1\", \"kind\": \"Node\", \"metadata\": {\"name\": \"n1\"}}]\n",
        "{\"kind\": \"Node\", \"apiVersion\": \"v1\", \"metadata\": {\"name\": \"n2\"}}\n",
        "{\"kind\": \"List\", \"apiVersion\": \"v1\", \"items\": null}\n",
    );
    let (_dir, path) = temp_file("mixed.json", text.as_bytes());
    let (view, summary) = load_with_summary(&path).unwrap();
    assert_eq!(names(&view.nodes), ["n1", "n2"]);
    assert!(summary.ignored.is_empty());
    // What is no object is an error, at its position.
    for (text, expected) in [
        ("[{\"apiVersion\": \"v1\", \"kind\": \"Node\", \"metadata\": {\"name\": \"n1\"}},\n 5]", "document 1: [1]: expected a Kubernetes object (a mapping with apiVersion and kind), found a number at line 2 column 2"),
        ("{\"kind\": \"List\", \"items\": [\"x\"]}", "document 1: items[0]: expected a Kubernetes object (a mapping with apiVersion and kind), found a string at line 1 column 28"),
        ("\n\n  {\"no\": \"kind\"}", "document 1: expected a Kubernetes object (a mapping with apiVersion and kind), found a mapping without a string apiVersion and kind at line 3 column 3"),
        ("{\"apiVersion\": \"v1\", \"kind\": \"Node\", \"metadata\": {}}", "document 1: Node: metadata.name: missing (every Kubernetes object has one)"),
    ] {
        let (_dir, path) = temp_file("odd.json", text.as_bytes());
        assert_eq!(error_of(&path), format!("{}: {expected}", path.display()), "{text}");
    }
    // Positions count the mark as the file's bytes.
    let bad = "\u{feff}{\"apiVersion\": \"v1\", \"kind\": \"Node\", \"metadata\": {\"name\": 7}}";
    let (_dir, path) = temp_file("bad.json", bad.as_bytes());
    let message = error_of(&path);
    assert!(
        message
            .ends_with("document 1: Node: invalid type: integer `7`, expected a string at line 1 column 62"),
        "{message}"
    );
}

#[test]
fn yaml_documents_that_are_not_objects_are_errors() {
    let found = "expected a Kubernetes object (a mapping with apiVersion and kind), found";
    for (text, expected) in [
        ("42\n".to_owned(), format!("document 1: {found} a number at line 1 column 1")),
        ("just a string\n".to_owned(), format!("document 1: {found} a string at line 1 column 1")),
        (
            "{}\n".to_owned(),
            format!("document 1: {found} a mapping without a string apiVersion and kind at line 1 column 1"),
        ),
        (
            "# c\n---\n- apiVersion: v1\n  kind: Node\n  metadata: {name: n1}\n- 3\n".to_owned(),
            format!("document 1: [1]: {found} a number at line 6 column 3"),
        ),
        (
            "apiVersion: v1\nkind: List\nitems:\n- true\n".to_owned(),
            format!("document 1: items[0]: {found} a boolean at line 4 column 3"),
        ),
        (
            "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\nfoo: bar\n".to_owned(),
            format!("document 2: {found} a mapping without a string apiVersion and kind at line 5 column 1"),
        ),
        (
            "apiVersion: v1\nkind: Node\nmetadata:\n  labels: {a: b}\n".to_owned(),
            "document 1: Node: metadata.name: missing (every Kubernetes object has one)".to_owned(),
        ),
    ] {
        let (_dir, path) = temp_file("odd.yaml", text.as_bytes());
        assert_eq!(error_of(&path), format!("{}: {expected}", path.display()), "{text}");
    }
}

#[test]
fn duplicate_yaml_keys_are_errors_naming_the_key_and_its_position() {
    let text = "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  labels:\n    a: x\n    a: y\n";
    let (_dir, path) = temp_file("dup.yaml", text.as_bytes());
    let message = error_of(&path);
    assert!(
        message.ends_with("document 1: metadata.labels: duplicate key \"a\" at line 6 column 5"),
        "{message}"
    );
}

#[test]
fn malformed_yaml_document_names_file_and_document() {
    let path = fixture("bad-doc.yaml");
    let message = error_of(&path);
    let expected = format!(
        "{}: document 3: did not find expected ',' or '}}' at line 16 column 5, while parsing a flow mapping at line 15 column 11",
        path.display()
    );
    assert_eq!(message, expected);
    match load(&path) {
        Err(DumpError::Parse { file, location, .. }) => {
            assert_eq!(file, path);
            assert_eq!(location, Location { document: 3, item: None, object: None });
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn yaml_type_error_names_object_field_path_and_line() {
    let path = fixture("bad-type.yaml");
    let expected = format!(
        "{}: document 2: Node \"node-4\": spec.taints[0].effect: invalid type: map, expected a string at line 14 column 7",
        path.display()
    );
    assert_eq!(error_of(&path), expected);
}

#[test]
fn yaml_list_item_error_names_the_item() {
    let path = fixture("bad-list-item.yaml");
    let expected = format!(
        "{}: document 1: items[1]: Node \"node-1\": spec.podCIDRs: invalid type: string \"not-a-list\", expected a sequence at line 12 column 15",
        path.display()
    );
    assert_eq!(error_of(&path), expected);
}

#[test]
fn json_list_item_error_names_the_item_and_its_line_in_the_file() {
    let path = fixture("bad-item.json");
    let expected = format!(
        "{}: document 1: items[2]: Node \"node-2\": invalid type: integer `42`, expected a string at line 27 column 36",
        path.display()
    );
    assert_eq!(error_of(&path), expected);
    let path = fixture("bad-syntax-item.json");
    let expected =
        format!("{}: document 1: items[1]: Node: expected `:` at line 16 column 32", path.display());
    assert_eq!(error_of(&path), expected);
}

#[test]
fn structural_json_errors_are_located() {
    let path = fixture("truncated.json");
    let expected =
        format!("{}: document 1: items[0]: unterminated string at line 1 column 90", path.display());
    assert_eq!(error_of(&path), expected);
    let cases = [
        ("{\"a\": [1, 2}", "document 1: mismatched bracket at line 1 column 12"),
        (
            "{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [{\"kind\": \"A\", \"apiVersion\": \"v1\"}, {\"kind\": \"A\", \"apiVersion\": \"v1\"}\n{}]}",
            "document 1: items[1]: expected `,` or `]` at line 2 column 1",
        ),
        ("{\"kind\": \"A\", \"apiVersion\": \"v1\"}\n]", "document 2: expected a JSON object or array at line 2 column 1"),
        ("{\"a\" 1}", "document 1: expected `:` at line 1 column 6"),
        (
            "{\"apiVersion\": \"v1\", \"items\": [], \"kind\": \"Node\"}",
            "document 1: a top-level `items` array belongs to a List, but this object is a Node",
        ),
        (
            "{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": 3}",
            "document 1: List: items: expected an array",
        ),
        (
            "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"data\": {\"a\": tru}}",
            "document 1: ConfigMap: expected ident at line 1 column 60",
        ),
    ];
    for (text, expected) in cases {
        let (_dir, path) = temp_file("x.json", text.as_bytes());
        let message = error_of(&path);
        assert_eq!(message, format!("{}: {expected}", path.display()), "{text}");
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    // Skipped without recursion where the type has no such field...
    let json = format!("{{\"apiVersion\": \"v1\", \"kind\": \"Node\", \"metadata\": {{\"name\": \"n\"}}, \"spec\": {{\"a\": {deep}}}}}");
    let (_dir, path) = temp_file("deep.json", json.as_bytes());
    assert_eq!(load(&path).unwrap().nodes.len(), 1);
    // ... and refused where it would be built.
    let json = format!(
        "{{\"apiVersion\": \"operator.tigera.io/v1\", \"kind\": \"Installation\", \"metadata\": {{\"name\": \"default\"}}, \"spec\": {deep}}}"
    );
    let (_dir, path) = temp_file("deep.json", json.as_bytes());
    let message = error_of(&path);
    assert!(
        message
            .ends_with("document 1: Installation \"default\": recursion limit exceeded at line 1 column 232"),
        "{message}"
    );
    // YAML is refused before libyaml (quadratic in the nesting) sees it,
    // at the bracket one level too deep.
    for depth in [101, 100_000] {
        let yaml = format!("apiVersion: v1\nkind: Node\nspec: {}{}\n", "[".repeat(depth), "]".repeat(depth));
        let (_dir, path) = temp_file("deep.yaml", yaml.as_bytes());
        let message = error_of(&path);
        let expected = ": line 3 column 107: YAML collections nested deeper than 100 levels (the limit)";
        assert_eq!(message, format!("{}{expected}", path.display()));
    }
}

#[test]
fn missing_path_is_named() {
    let path = fixture("no-such-dump");
    assert!(matches!(load(&path), Err(DumpError::NotFound { .. })));
    assert_eq!(error_of(&path), format!("{}: no such file or directory", path.display()));
}

#[test]
fn no_objects_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let expected = format!("no Kubernetes objects found in {}", dir.path().display());
    assert_eq!(error_of(dir.path()), expected);
    // Only hidden and non-dump files, or empty documents: still nothing.
    fs::write(dir.path().join(".hidden.yaml"), "apiVersion: v1\nkind: Node\nmetadata: {name: n}\n").unwrap();
    fs::write(dir.path().join("notes.txt"), "apiVersion: v1\nkind: Node\nmetadata: {name: n}\n").unwrap();
    fs::write(dir.path().join("empty.yaml"), "---\n# nothing\n---\n").unwrap();
    fs::write(dir.path().join("empty.json"), "  \n").unwrap();
    fs::write(dir.path().join("list.json"), "{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": []}")
        .unwrap();
    assert_eq!(error_of(dir.path()), expected);
    let (_file_dir, empty) = temp_file("empty.yaml", b"");
    assert_eq!(error_of(&empty), format!("no Kubernetes objects found in {}", empty.display()));
}

fn addon_secret_yaml(data: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: alibaba-addon-secret\n  namespace: kube-system\ntype: Opaque\n{data}")
}

fn addon_secret_json(data: &str) -> String {
    format!("{{\"apiVersion\": \"v1\", \"items\": [{{\"apiVersion\": \"v1\", \"data\": {data}, \"kind\": \"Secret\", \"metadata\": {{\"name\": \"alibaba-addon-secret\", \"namespace\": \"kube-system\"}}}}], \"kind\": \"List\"}}")
}

#[test]
fn secret_with_base64_values_is_reduced_to_key_presence() {
    let encoded = base64(SECRET.as_bytes());
    let data = format!("data:\n  access-key-id: {encoded}\n  access-key-secret: \"\"\n  extra: null\nstringData:\n  note: x\n");
    let (_dir, path) = temp_file("secret.yaml", addon_secret_yaml(&data).as_bytes());
    let (view, summary) = load_with_summary(&path).unwrap();
    let keys = view.addon_secret.as_ref().unwrap();
    let expected = [("access-key-id", true), ("access-key-secret", false), ("extra", false), ("note", true)];
    assert_eq!(keys.keys, expected.iter().map(|(k, v)| (k.to_string(), *v)).collect());
    for shown in [format!("{view:?}"), format!("{summary:?}")] {
        assert!(!shown.contains(SECRET) && !shown.contains(&encoded), "{shown}");
    }
    // The same through JSON, with redacted values as `terway-hybrid dump` writes them.
    let data = format!("{{\"access-key-id\": \"{encoded}\", \"access-key-secret\": \"<redacted:30>\", \"x\": \"<redacted:000>\"}}");
    let (_dir, path) = temp_file("secret.json", addon_secret_json(&data).as_bytes());
    let view = load(&path).unwrap();
    let keys = view.addon_secret.as_ref().unwrap();
    assert!(keys.non_empty(ACCESS_KEY_ID) && keys.non_empty(ACCESS_KEY_SECRET) && !keys.non_empty("x"));
    assert!(!format!("{view:?}").contains(&encoded));
}

#[test]
fn secret_values_never_appear_in_errors() {
    let encoded = base64(SECRET.as_bytes());
    let yaml = [
        format!("data:\n  access-key-id: {SECRET}!\n"),
        format!("data:\n  access-key-id: [{encoded}]\n"),
        format!("data: [{encoded}]\n"),
        format!("data:\n  access-key-id: \"{encoded}\n"),
        format!("data:\n  access-key-id: {encoded}\n  access-key-id: {SECRET}\n"),
        format!("stringData:\n  access-key-id: {{k: {SECRET}}}\n"),
    ];
    let json = [
        format!("{{\"access-key-id\": \"{encoded}\" \"{SECRET}\"}}"),
        format!("{{\"access-key-id\": \"{encoded}\",}}"),
        format!("{{\"access-key-id\": \"{SECRET}\\q\"}}"),
        format!("{{\"access-key-id\": \"{encoded}\"]"),
        format!("{{\"access-key-id\": {{\"{SECRET}\": 1}}}}"),
        format!("\"{SECRET}\""),
    ];
    let files = yaml
        .iter()
        .map(|d| ("s.yaml", addon_secret_yaml(d)))
        .chain(json.iter().map(|d| ("s.json", addon_secret_json(d))))
        .chain(json.iter().map(|d| {
            let single = format!("{{\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"metadata\": {{\"name\": \"alibaba-addon-secret\", \"namespace\": \"kube-system\"}}, \"data\": {d}}}");
            ("single.json", single)
        }));
    for (name, text) in files {
        let (_dir, path) = temp_file(name, text.as_bytes());
        let err = load(&path).expect_err(&text);
        let shown = vec![err.to_string(), format!("{err:?}")];
        for shown in shown {
            assert!(!shown.contains(SECRET) && !shown.contains(&encoded), "{text}\n=> {shown}");
        }
    }
}

/// Whatever the bytes, a load returns (no panic, no hang) with one of
/// two outcomes: objects, all counted, from exactly this file; or an
/// error that names the file (exit 2 with the file, as the contract says).
fn load_bytes(name: &str, bytes: &[u8]) {
    let (_dir, path) = temp_file(name, bytes);
    match load_with_summary(&path) {
        Ok((view, summary)) => {
            assert_eq!(summary.files, std::slice::from_ref(&path));
            assert!(summary.objects() > 0, "a load without objects is an error");
            let kept = view.nodes.len() + view.reports.len() + view.daemon_sets.len() + view.pods.len();
            assert!(kept <= summary.objects());
            // Every object the view keeps has a name.
            assert!(view.nodes.iter().all(|n| n.metadata.name.as_deref().is_some_and(|n| !n.is_empty())));
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        load_bytes("x.json", &bytes);
    }

    #[test]
    fn json_like_text_never_panics(text in "[{]?[ \n{}\\[\\]\",:a-z0-9\\\\.-]{0,300}") {
        load_bytes("x.json", text.as_bytes());
    }

    #[test]
    fn yaml_like_text_never_panics(text in "[ \n:\\-a-z{}\\[\\]\"'#&*!|>]{0,300}") {
        load_bytes("x.yaml", text.as_bytes());
    }

    #[test]
    fn corrupted_dumps_never_panic(cut in 0usize..4000, at in 0usize..4000, byte in any::<u8>()) {
        for name in ["kubectl-list.json", "multi-doc.yaml", "nodelist-typed.json"] {
            let mut bytes = fs::read(fixture(name)).unwrap();
            if let Some(b) = bytes.get_mut(at) {
                *b = byte;
            }
            bytes.truncate(cut);
            load_bytes(name, &bytes);
        }
    }
}
