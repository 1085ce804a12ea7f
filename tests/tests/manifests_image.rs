//! The image the rendered deploy/ manifests run: one, tagged with the
//! workspace version, and built by the Dockerfile with every binary the
//! manifests run where they run it.
//!
//! Needs `kubectl` (>= 1.27, kustomize v5).

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use std::collections::BTreeSet;
use terway_hybrid_testkit::manifests::{
    built_binaries, pod_spec_of_daemon_set, pod_spec_of_deployment, read, renderings, AGENT, CONTROLLER,
};

#[test]
fn images_are_one_and_tagged_with_the_workspace_version() {
    let version = env!("CARGO_PKG_VERSION");
    for r in renderings() {
        let mut images = BTreeSet::new();
        for ds in r.typed::<DaemonSet>() {
            images.extend(pod_spec_of_daemon_set(&ds).containers.iter().filter_map(|c| c.image.clone()));
        }
        for d in r.typed::<Deployment>() {
            images.extend(pod_spec_of_deployment(&d).containers.iter().filter_map(|c| c.image.clone()));
        }
        assert_eq!(images.len(), 1, "{}: one image for both components: {images:?}", r.dir);
        let image = images.into_iter().next().expect("an image");
        let (repository, tag) =
            image.rsplit_once(':').unwrap_or_else(|| panic!("{}: {image} has no tag", r.dir));
        assert_eq!(tag, version, "{}: the image tag is the workspace version", r.dir);
        assert!(repository.ends_with("terway-hybrid"), "{}: {image}", r.dir);
        if r.dir.contains("overlays") {
            assert!(repository.contains('/'), "{}: an overlay names a registry: {image}", r.dir);
        }
    }
}

#[test]
fn the_dockerfile_builds_and_copies_what_the_manifests_run() {
    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile
            .contains("cargo build --release --locked -p terway-hybrid-agent -p terway-hybrid-controller"),
        "the Dockerfile builds both packages as a developer would"
    );
    let built = built_binaries();
    for name in [AGENT, CONTROLLER, "terway-hybrid"] {
        assert!(built.contains(name), "no package builds {name}: {built:?}");
        assert!(
            dockerfile.contains(&format!("target/release/{name}")),
            "the Dockerfile copies {name} out of target/release"
        );
        assert!(
            dockerfile.contains(&format!("/usr/local/bin/{name}")),
            "the image has /usr/local/bin/{name}"
        );
    }
    assert!(dockerfile.contains("distroless/cc-debian12:nonroot"), "a distroless, non-root base");
}
