//! The example config in the repository loads.

#[test]
fn example_site_config_loads() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/site.example.toml");
    let cfg = twinsite_site::config::SiteConfig::load(&p).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(cfg.participants.len(), 2);
    twinsite_site::gateway::load_key(&cfg.site.keys[0]).unwrap();
}
