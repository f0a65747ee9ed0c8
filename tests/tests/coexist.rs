//! Another XDP program already on the interface: the kernel takes one per
//! interface, so the daemon's start fails, and the error names the program
//! in the way and where to look, rather than a bare `bpf_link_create`.

use std::time::Duration;

use dns_xdp_tests::{
    SRV_V4, Topology, TopologyExt as _, daemon::EXAMPLE_ZONE, daemon_bin, in_netns, require_root, workspace_root,
};

#[test]
fn an_interface_with_another_xdp_program_fails_the_start_naming_it() {
    require_root();
    let topo = Topology::new();
    let iface = topo.srv_if().to_owned();
    let other =
        in_netns(topo.srv(), move || dns_xdp::lab::attach_pass_program(&iface, dns_xdp::config::AttachMode::Native))
            .expect("another program on the server veth");
    let iface = topo.srv_if().to_owned();
    let other_id = in_netns(topo.srv(), move || dns_xdp::health::attached_program(&iface))
        .expect("the other program's ID, from the interface");

    let mut cmd = topo.srv().command(daemon_bin());
    cmd.current_dir(workspace_root())
        .args(["run", "--zone", EXAMPLE_ZONE, "--listen", &format!("{SRV_V4}:53"), "--iface", topo.srv_if()])
        .args(["--xdp-mode", "native", "--metrics", "off", "--control-socket", "off"]);
    let mut daemon = dns_xdp_tests::spawn(cmd, "dns-xdp");
    let status = daemon.wait(Duration::from_secs(20)).expect("the daemon exits");
    assert!(!status.success(), "started beside another XDP program:\n{}", daemon.stderr());
    let err = daemon.stderr();
    let wanted = format!("{} already has XDP program {other_id} attached", topo.srv_if());
    assert!(err.contains(&wanted), "the error says {wanted:?}:\n{err}");
    drop(other);
}
