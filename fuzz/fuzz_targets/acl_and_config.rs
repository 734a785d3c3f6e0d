//! The ACL policy parser and the node's TOML config file on arbitrary text: an error with a
//! reason, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proglog_node::acl::Policy;
use proglog_node::config::NodeArgs;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Policy::parse(text);
    if let Ok(args) = toml::from_str::<NodeArgs>(text) {
        let _ = args.resolve();
    }
});
