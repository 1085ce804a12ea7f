//! The controller's watches through kube's `Client` over a `tower-test`
//! mock API server: the initial lists, a watch that ends (resumed from the
//! last resourceVersion, bookmarks included), a watch that expires (410
//! Gone: re-listed, and the stores then hold the new list exactly), the
//! RAM Secret's values never reaching the ClusterView, and the pod watches
//! following the TerwayRollout's choice of DaemonSets.

mod mock_api;
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::client::Body;
use mock_api::{mock_client, query, respond, respond_bytes, MockHandle};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use terway_hybrid_api::names::{ACCESS_KEY_ID, ACCESS_KEY_SECRET};
use terway_hybrid_controller::cli::dump;
use terway_hybrid_controller::daemon::watch::{self, Stores};
use terway_hybrid_controller::pure::cluster::Cluster;
use terway_hybrid_controller::pure::pod::SlimPod;
use terway_hybrid_controller::pure::view::ClusterView;
use terway_hybrid_testkit::example_dir;
use tokio::sync::{mpsc, Notify};
use tower_test::mock::SendResponse;

const AK_ID: &str = "AKIDEXAMPLE";
const AK_SECRET: &str = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY";

const NODES: &str = "/api/v1/nodes";
const REPORTS: &str = "/apis/terway-hybrid.io/v1alpha1/nodenetworkreports";
const DAEMON_SETS: &str = "/apis/apps/v1/daemonsets";
const ROLLOUTS: &str = "/apis/terway-hybrid.io/v1alpha1/terwayrollouts";
const CONFIG_MAPS: &str = "/api/v1/namespaces/kube-system/configmaps?metadata.name=eni-config";
const SECRETS: &str = "/api/v1/namespaces/kube-system/secrets?metadata.name=alibaba-addon-secret";
const SERVICES: &str = "/api/v1/namespaces/default/services?metadata.name=kubernetes";
/// The CNI ConfigMaps `CIDROverlap` reads (address_plan::CNI_CONFIG_MAPS).
const FLANNEL_CONFIG_MAPS: &str = "/api/v1/namespaces/kube-flannel/configmaps?metadata.name=kube-flannel-cfg";
const FLANNEL_CONFIG_MAPS_KUBE_SYSTEM: &str =
    "/api/v1/namespaces/kube-system/configmaps?metadata.name=kube-flannel-cfg";
const CILIUM_CONFIG_MAPS: &str = "/api/v1/namespaces/kube-system/configmaps?metadata.name=cilium-config";

/// A request as the mock API server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: BTreeMap<String, String>,
}

impl Seen {
    fn is_watch(&self) -> bool {
        self.query.get("watch").map(String::as_str) == Some("true")
    }

    /// Which collection: the path, plus the label selector for pods or the
    /// field selector for an object watched by name.
    fn key(&self) -> String {
        match self.query.get("labelSelector").or(self.query.get("fieldSelector")) {
            Some(sel) => format!("{}?{sel}", self.path),
            None => self.path.clone(),
        }
    }
}

fn parse(request: &Request<Body>) -> Seen {
    Seen {
        method: request.method().clone(),
        path: request.uri().path().to_owned(),
        query: query(request.uri()),
    }
}

/// A watch response: newline-delimited events, then the end of the stream.
fn watch_body(events: &[Value]) -> Response<Body> {
    let mut body = Vec::new();
    for e in events {
        serde_json::to_writer(&mut body, e).unwrap();
        body.push(b'\n');
    }
    respond_bytes(StatusCode::OK, body)
}

fn event(type_: &str, object: &Value) -> Value {
    json!({"type": type_, "object": object})
}

fn bookmark(api_version: &str, kind: &str, rv: &str) -> Value {
    event("BOOKMARK", &json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": rv}}))
}

fn gone(rv: &str) -> Value {
    event(
        "ERROR",
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {rv} (300)"), "reason": "Expired", "code": 410}),
    )
}

/// An open watch: its request, and the means to answer it.
type OpenWatch = (Seen, SendResponse<Response<Body>>);

/// One collection the mock server lists.
#[derive(Default)]
struct Collection {
    items: Vec<Value>,
    resource_version: String,
}

/// The mock API server's state, shared with the test.
#[derive(Default)]
struct Server {
    collections: HashMap<String, Collection>,
    /// Every request, in arrival order.
    log: Vec<Seen>,
    /// Watch requests not answered yet (an open, idle watch), by collection.
    parked: HashMap<String, Vec<OpenWatch>>,
}

type Shared = Arc<Mutex<Server>>;

enum Command {
    /// Answer the collection's open watch with these events, then end it.
    EndWatch(String, Vec<Value>),
}

/// Serves lists from the shared state and parks watches until told.
async fn serve(mut handle: MockHandle, shared: Shared, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut pending: HashMap<String, Vec<Value>> = HashMap::new();
    loop {
        tokio::select! {
            next = handle.next_request() => {
                let Some((request, send)) = next else { return };
                let seen = parse(&request);
                let key = seen.key();
                let mut server = shared.lock().unwrap();
                server.log.push(seen.clone());
                assert_eq!(seen.method, Method::GET, "watches only read: {seen:?}");
                if seen.is_watch() {
                    match pending.remove(&key) {
                        Some(events) => send.send_response(watch_body(&events)),
                        None => server.parked.entry(key).or_default().push((seen, send)),
                    }
                } else {
                    let list = match server.collections.get(&key) {
                        Some(c) => json!({"apiVersion": "v1", "kind": "List",
                            "metadata": {"resourceVersion": c.resource_version}, "items": c.items}),
                        None => panic!("an unexpected list: {seen:?}"),
                    };
                    send.send_response(respond(StatusCode::OK, &list));
                }
            }
            command = commands.recv() => match command {
                Some(Command::EndWatch(key, events)) => {
                    let open = shared.lock().unwrap().parked.get_mut(&key).and_then(Vec::pop);
                    match open {
                        Some((_, send)) => send.send_response(watch_body(&events)),
                        None => { pending.insert(key, events); }
                    }
                }
                None => return,
            },
        }
    }
}

fn example() -> ClusterView {
    dump::load(&example_dir("bgp-pass")).expect("the example loads")
}

fn with_rv(object: Value, rv: &str) -> Value {
    let mut object = object;
    object["metadata"]["resourceVersion"] = json!(rv);
    object
}

fn node_named(view: &ClusterView, from: &str, to: &str, rv: &str) -> Value {
    let node = view.nodes.iter().find(|n| n.metadata.name.as_deref() == Some(from)).unwrap();
    let mut object = serde_json::to_value(&**node).unwrap();
    object["metadata"]["name"] = json!(to);
    object["metadata"]["uid"] = json!(format!("uid-{to}"));
    object["metadata"]["labels"]["kubernetes.io/hostname"] = json!(to);
    with_rv(object, rv)
}

/// Cilium's ConfigMap: one key `CIDROverlap` reads among many it does not.
fn cilium_config() -> Value {
    with_rv(
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cilium-config", "namespace": "kube-system"},
            "data": {"cluster-pool-ipv4-cidr": "10.0.0.0/8", "enable-bpf-masquerade": "true", "tunnel": "vxlan"}}),
        "100",
    )
}

fn secret() -> Value {
    let secret = Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("alibaba-addon-secret".into()),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            (ACCESS_KEY_ID.to_owned(), ByteString(AK_ID.as_bytes().to_vec())),
            (ACCESS_KEY_SECRET.to_owned(), ByteString(AK_SECRET.as_bytes().to_vec())),
        ])),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    with_rv(serde_json::to_value(secret).unwrap(), "100")
}

/// The collection of a DaemonSet's pods, as the controller lists them: in
/// its namespace, by its selector (every example DaemonSet selects `app=NAME`).
fn pods_key(namespace: &str, app: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/pods?app={app}")
}

/// The pods of the example that `ds` owns, as served.
fn pods_of(view: &ClusterView, ds: &str) -> Vec<Value> {
    view.pods
        .iter()
        .filter(|p| p.metadata.owner_references.iter().flatten().any(|o| o.name == ds))
        .map(|p| {
            let mut object = with_rv(serde_json::to_value(&**p).unwrap(), "100");
            object["metadata"]["labels"] = json!({"app": ds});
            object
        })
        .collect()
}

/// (namespace, name) of every DaemonSet in the example.
fn daemon_set_names(view: &ClusterView) -> Vec<(String, String)> {
    view.daemon_sets
        .iter()
        .map(|d| (d.metadata.namespace.clone().unwrap(), d.metadata.name.clone().unwrap()))
        .collect()
}

/// Objects as the API server serves them, at resourceVersion 100.
fn objects<'a, T: serde::Serialize + 'a>(items: impl IntoIterator<Item = &'a T>) -> Vec<Value> {
    items.into_iter().map(|o| with_rv(serde_json::to_value(o).unwrap(), "100")).collect()
}

fn collections(view: &ClusterView) -> HashMap<String, Collection> {
    let all = |items: Vec<Value>| Collection { items, resource_version: "100".into() };
    let mut collections = HashMap::from([
        (NODES.to_owned(), all(objects(view.nodes.iter().map(|n| &**n)))),
        (REPORTS.to_owned(), all(objects(view.reports.iter().map(|r| &**r)))),
        (DAEMON_SETS.to_owned(), all(objects(&view.daemon_sets))),
        (ROLLOUTS.to_owned(), all(objects(&view.rollout))),
        (CONFIG_MAPS.to_owned(), all(objects(&view.eni_config))),
        (SECRETS.to_owned(), all(vec![secret()])),
        (SERVICES.to_owned(), all(objects(&view.kubernetes_service))),
        (FLANNEL_CONFIG_MAPS.to_owned(), all(vec![])),
        (FLANNEL_CONFIG_MAPS_KUBE_SYSTEM.to_owned(), all(vec![])),
        (CILIUM_CONFIG_MAPS.to_owned(), all(vec![cilium_config()])),
    ]);
    for (ns, name) in daemon_set_names(view) {
        collections.insert(pods_key(&ns, &name), all(pods_of(view, &name)));
    }
    collections
}

/// Polls `stores` until `ok` holds (each watch event notifies `changed`).
async fn until(
    stores: &Stores,
    changed: &Notify,
    what: &str,
    ok: impl Fn(&ClusterView) -> bool,
) -> ClusterView {
    let wait = async {
        loop {
            let view = stores.view();
            if ok(&view) {
                return view;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), changed.notified()).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Waits until the collection's watch is open (parked at the server).
async fn watching(shared: &Shared, key: &str) -> Seen {
    let wait = async {
        loop {
            if let Some(seen) =
                shared.lock().unwrap().parked.get(key).and_then(|v| v.last()).map(|(s, _)| s.clone())
            {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait).await.unwrap_or_else(|_| panic!("no watch on {key}"))
}

fn names(view: &ClusterView) -> Vec<String> {
    let mut n: Vec<String> = view.nodes.iter().filter_map(|n| n.metadata.name.clone()).collect();
    n.sort();
    n
}

fn requests(shared: &Shared, key: &str) -> Vec<Seen> {
    shared.lock().unwrap().log.iter().filter(|s| s.key() == key).cloned().collect()
}

/// The mock API server on `shared`, and the controller's watches on it.
fn start(
    shared: &Shared,
) -> (
    mpsc::UnboundedSender<Command>,
    Stores,
    Arc<Notify>,
    tokio::task::JoinHandle<()>,
    tokio::task::JoinHandle<()>,
) {
    let (client, handle) = mock_client();
    let (commands, rx) = mpsc::unbounded_channel();
    let server = tokio::spawn(serve(handle, shared.clone(), rx));
    let changed = Arc::new(Notify::new());
    let (stores, driver) = watch::start(client, watch::Optional::default(), changed.clone());
    (commands, stores, changed, tokio::spawn(driver), server)
}

#[tokio::test]
async fn lists_then_resumes_an_ended_watch_and_relists_after_410() {
    let example = example();
    let shared: Shared =
        Arc::new(Mutex::new(Server { collections: collections(&example), ..Server::default() }));
    let (commands, stores, changed, driver, server) = start(&shared);

    // 1. The initial lists, then one open watch per collection from the
    //    list's resourceVersion.
    tokio::time::timeout(Duration::from_secs(20), stores.wait_until_ready()).await.expect("the stores sync");
    let view = until(&stores, &changed, "the singletons", |v| {
        v.eni_config.is_some()
            && v.addon_secret.is_some()
            && v.kubernetes_service.is_some()
            && !v.cni_configs.is_empty()
    })
    .await;
    // The CNI ConfigMap that exists, reduced to the key the check reads.
    let cni: Vec<Value> = view.cni_configs.iter().map(|c| serde_json::to_value(c).unwrap()).collect();
    assert_eq!(cni.len(), 1, "{cni:?}");
    assert_eq!(cni[0]["metadata"]["name"], "cilium-config");
    assert_eq!(cni[0]["data"], json!({"cluster-pool-ipv4-cidr": "10.0.0.0/8"}));
    assert_eq!(names(&view), ["cloud-1", "cloud-2", "onprem-1", "onprem-2", "onprem-3"]);
    assert_eq!(view.reports.len(), 5);
    assert_eq!(view.daemon_sets.len(), 3);
    assert_eq!(view.pods.len(), example.pods.len(), "every relevant DaemonSet's pods listed");
    assert_eq!(view.rollout.as_ref().and_then(|r| r.metadata.name.as_deref()), Some("default"));
    for key in [
        NODES,
        REPORTS,
        DAEMON_SETS,
        ROLLOUTS,
        CONFIG_MAPS,
        SECRETS,
        SERVICES,
        FLANNEL_CONFIG_MAPS,
        FLANNEL_CONFIG_MAPS_KUBE_SYSTEM,
        CILIUM_CONFIG_MAPS,
    ] {
        let seen = requests(&shared, key);
        let list = &seen[0];
        assert!(!list.is_watch(), "{key}: the first request is a list: {list:?}");
        let watch = watching(&shared, key).await;
        assert_eq!(watch.query.get("resourceVersion").map(String::as_str), Some("100"), "{key}: {watch:?}");
        assert!(!watch.query.contains_key("sendInitialEvents"), "{key}: a plain list-then-watch: {watch:?}");
    }
    // One pod watch per relevant DaemonSet, in its namespace, by its selector.
    for (ns, name) in daemon_set_names(&example) {
        let key = pods_key(&ns, &name);
        let selector = format!("app={name}");
        assert_eq!(requests(&shared, &key)[0].query.get("labelSelector"), Some(&selector), "{key}");
        watching(&shared, &key).await;
    }
    for (key, name) in
        [(CONFIG_MAPS, "eni-config"), (SECRETS, "alibaba-addon-secret"), (SERVICES, "kubernetes")]
    {
        let list = &requests(&shared, key)[0];
        assert_eq!(
            list.query.get("fieldSelector").map(String::as_str),
            Some(format!("metadata.name={name}").as_str())
        );
    }

    // The Secret's values never reach the view: only which keys are non-empty.
    let keys = view.addon_secret.as_ref().expect("the Secret is seen");
    assert!(keys.non_empty(ACCESS_KEY_ID) && keys.non_empty(ACCESS_KEY_SECRET), "{keys:?}");
    let debug = format!("{view:?}");
    for value in [AK_ID, AK_SECRET] {
        let encoded = serde_json::to_value(ByteString(value.as_bytes().to_vec())).unwrap();
        let encoded = encoded.as_str().unwrap();
        assert!(secret().to_string().contains(encoded), "the served Secret holds {encoded}");
        assert!(!debug.contains(value), "the view holds the value {value}");
        assert!(!debug.contains(encoded), "the view holds the base64 of {value}");
    }
    assert_eq!(encoded_ak_id(), "QUtJREVYQU1QTEU=");

    // 2. The nodes' watch delivers a node and a bookmark, then ends (the
    //    connection dropped): the watcher resumes from the bookmark's
    //    resourceVersion, without a re-list.
    let lists_before = requests(&shared, NODES).iter().filter(|s| !s.is_watch()).count();
    commands
        .send(Command::EndWatch(
            NODES.to_owned(),
            vec![
                event("ADDED", &node_named(&example, "cloud-2", "cloud-3", "101")),
                bookmark("v1", "Node", "150"),
            ],
        ))
        .unwrap();
    until(&stores, &changed, "cloud-3 added", |v| names(v).contains(&"cloud-3".to_owned())).await;
    let resumed = {
        let wait = async {
            loop {
                let watches: Vec<Seen> =
                    requests(&shared, NODES).into_iter().filter(Seen::is_watch).collect();
                if watches.len() >= 2 {
                    return watches[watches.len() - 1].clone();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait).await.expect("the watch is resumed")
    };
    assert_eq!(resumed.query.get("resourceVersion").map(String::as_str), Some("150"), "{resumed:?}");
    assert_eq!(requests(&shared, NODES).iter().filter(|s| !s.is_watch()).count(), lists_before, "no re-list");

    // A singleton's watch delivers a deletion, then ends: the slot empties.
    let eni_config = shared.lock().unwrap().collections[CONFIG_MAPS].items[0].clone();
    commands
        .send(Command::EndWatch(CONFIG_MAPS.to_owned(), vec![event("DELETED", &with_rv(eni_config, "120"))]))
        .unwrap();
    until(&stores, &changed, "eni-config deleted", |v| v.eni_config.is_none()).await;
    shared.lock().unwrap().collections.get_mut(CONFIG_MAPS).unwrap().items.clear();

    // 3. Both watches expire (410 Gone) while the cluster moved on: onprem-3
    //    left, cloud-4 joined, the Secret was deleted. The watchers re-list and
    //    the stores hold exactly the new lists.
    {
        let mut server = shared.lock().unwrap();
        let nodes = server.collections.get_mut(NODES).unwrap();
        nodes.items.retain(|n| n["metadata"]["name"] != "onprem-3");
        nodes.items.push(node_named(&example, "cloud-2", "cloud-3", "101"));
        nodes.items.push(node_named(&example, "cloud-2", "cloud-4", "300"));
        nodes.resource_version = "300".into();
        let secrets = server.collections.get_mut(SECRETS).unwrap();
        secrets.items.clear();
        secrets.resource_version = "300".into();
    }
    watching(&shared, NODES).await;
    watching(&shared, SECRETS).await;
    commands.send(Command::EndWatch(NODES.to_owned(), vec![gone("150")])).unwrap();
    commands.send(Command::EndWatch(SECRETS.to_owned(), vec![gone("100")])).unwrap();
    let view = until(&stores, &changed, "the re-listed nodes and Secret", |v| {
        names(v) == ["cloud-1", "cloud-2", "cloud-3", "cloud-4", "onprem-1", "onprem-2"]
            && v.addon_secret.is_none()
    })
    .await;
    assert_eq!(view.nodes.len(), 6);
    for key in [NODES, SECRETS] {
        let seen = requests(&shared, key);
        let relist = seen.iter().skip(1).find(|s| !s.is_watch()).unwrap_or_else(|| panic!("{key} re-listed"));
        assert_eq!(relist.method, Method::GET);
        let watch = watching(&shared, key).await;
        assert_eq!(watch.query.get("resourceVersion").map(String::as_str), Some("300"), "{key}: {watch:?}");
    }
    // The other watches were left alone: one list each.
    for key in [REPORTS, DAEMON_SETS, ROLLOUTS, CONFIG_MAPS, SERVICES] {
        assert_eq!(requests(&shared, key).iter().filter(|s| !s.is_watch()).count(), 1, "{key}");
    }
    let view = stores.view();
    assert_eq!(view.reports.len(), 5);
    assert!(view.eni_config.is_none() && view.kubernetes_service.is_some());

    driver.abort();
    server.abort();
}

fn encoded_ak_id() -> String {
    serde_json::to_value(ByteString(AK_ID.as_bytes().to_vec())).unwrap().as_str().unwrap().to_owned()
}

/// The owners of the view's pods, sorted and deduplicated.
fn pod_owners(view: &ClusterView) -> Vec<String> {
    let mut owners: Vec<String> = view
        .pods
        .iter()
        .flat_map(|p| p.metadata.owner_references.iter().flatten().map(|o| o.name.clone()))
        .collect();
    owners.sort();
    owners.dedup();
    owners
}

#[tokio::test]
async fn the_pod_watches_follow_the_rollouts_terway_daemon_set() {
    // The example plus a second Terway DaemonSet, `net/my-terway`, with pods
    // on the cloud nodes; the TerwayRollout names the default one for now.
    let mut example = example();
    let mut mine = example
        .daemon_sets
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some("terway-eniip"))
        .unwrap()
        .clone();
    mine.metadata.namespace = Some("net".into());
    mine.metadata.name = Some("my-terway".into());
    mine.spec.as_mut().unwrap().selector.match_labels =
        Some(BTreeMap::from([("app".into(), "my-terway".into())]));
    let mut my_pods = Vec::new();
    for p in example
        .pods
        .iter()
        .filter(|p| p.metadata.owner_references.iter().flatten().any(|o| o.name == "terway-eniip"))
    {
        let mut p = SlimPod::clone(p);
        p.metadata.namespace = Some("net".into());
        p.metadata.name = p.metadata.name.map(|n| n.replace("terway-eniip", "my-terway"));
        for o in p.metadata.owner_references.iter_mut().flatten() {
            o.name = "my-terway".into();
        }
        my_pods.push(p);
    }
    assert!(!my_pods.is_empty());
    example.daemon_sets.push(mine);
    example.pods.extend(my_pods.iter().cloned().map(Arc::new));
    let shared: Shared =
        Arc::new(Mutex::new(Server { collections: collections(&example), ..Server::default() }));
    let (commands, stores, changed, driver, server) = start(&shared);

    tokio::time::timeout(Duration::from_secs(20), stores.wait_until_ready()).await.expect("the stores sync");
    let view = stores.view();
    assert_eq!(
        pod_owners(&view),
        ["calico-node", "terway-eniip", "terway-hybrid-agent"],
        "my-terway is not in scope yet"
    );
    assert!(requests(&shared, &pods_key("net", "my-terway")).is_empty(), "its pods are not even listed");

    // The TerwayRollout now names net/my-terway: the controller re-scopes.
    let mut rollout = serde_json::to_value(example.rollout.as_ref().unwrap()).unwrap();
    rollout["spec"]["terway"] = json!({"namespace": "net", "daemonSetName": "my-terway"});
    commands
        .send(Command::EndWatch(ROLLOUTS.to_owned(), vec![event("MODIFIED", &with_rv(rollout, "101"))]))
        .unwrap();
    until(&stores, &changed, "the new TerwayRollout", |v| {
        v.rollout.as_ref().is_some_and(|r| r.spec.terway.daemon_set_name == "my-terway")
    })
    .await;
    assert!(stores.rescope(), "the scope changed");
    tokio::time::timeout(Duration::from_secs(20), stores.pods_ready())
        .await
        .expect("the new pod watch syncs");
    assert!(!stores.rescope(), "re-scoping again changes nothing");
    let view = stores.view();
    assert_eq!(pod_owners(&view), ["calico-node", "my-terway", "terway-hybrid-agent"]);
    let list = &requests(&shared, &pods_key("net", "my-terway"))[0];
    assert_eq!(list.query.get("labelSelector").map(String::as_str), Some("app=my-terway"));

    // The plan sees the custom DaemonSet's pods on the cloud nodes.
    let cluster = Cluster::new(&view);
    let terway = cluster.terway.expect("the custom Terway DaemonSet");
    assert_eq!(terway.metadata.name.as_deref(), Some("my-terway"));
    let seen: Vec<&str> =
        cluster.cloud().filter(|n| cluster.pod_of(terway, n.name()).is_some()).map(|n| n.name()).collect();
    assert_eq!(seen, ["cloud-1", "cloud-2"]);

    driver.abort();
    server.abort();
}
