//! Small helpers shared by the subcommands; the general ones are netlab's.

pub use netlab::cmd::{describe, find_executable, is_root, output, run_visible, stdout_of};
pub use netlab::{cargo, display_path, target_dir, workspace_root};
