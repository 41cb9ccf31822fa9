//! The example config in the repository loads.

#[test]
fn example_site_config_loads() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/site.example.toml");
    let cfg = twinsite_site::config::SiteConfig::load(&p).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(cfg.participants.len(), 3);
    twinsite_site::gateway::load_key(&cfg.site.keys[0]).unwrap();
}

#[test]
fn example_cluster_config_loads() {
    use twinsite_cluster::NodeRole;
    let p =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/cluster.example.toml");
    let cfg =
        twinsite_site::cluster_config::ClusterConfig::load(&p).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(cfg.participants.len(), 2);
    assert_eq!(cfg.lookup_ladder().len(), 4);
    for r in [NodeRole::Primary, NodeRole::Backup] {
        cfg.site_config(r).unwrap();
    }
    assert!(cfg.node(NodeRole::Witness).admin.ip().is_loopback());
}
