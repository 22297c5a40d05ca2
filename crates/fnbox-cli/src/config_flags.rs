//! `--runtime`, `--handler`, `--memory`, `--timeout`, `--initializer`, `--env` of `fnbox run`
//! and `fnbox serve`: the configuration of a package that has no function.yaml (a deploy zip as
//! FunctionGraph's console takes it). Checked by `fnbox_package::ConfigFlags`, with the rules
//! of function.yaml.

use fnbox_package::ConfigFlags;

/// The configuration flags, for a package without function.yaml.
#[derive(clap::Args, Debug, Default)]
pub struct ConfigArgs {
    /// For a package without function.yaml: its runtime (e.g. Python3.9, Node.js20.15, http,
    /// Custom), as function.yaml's `runtime`.
    #[arg(long)]
    pub runtime: Option<String>,
    /// For a package without function.yaml: the handler, e.g. index.handler.
    #[arg(long)]
    pub handler: Option<String>,
    /// For a package without function.yaml: memory size in MB (function.yaml's memory_size).
    #[arg(long)]
    pub memory: Option<u32>,
    /// For a package without function.yaml: timeout in seconds.
    #[arg(long)]
    pub timeout: Option<u32>,
    /// For a package without function.yaml: the initializer, e.g. index.init
    /// (function.yaml's initializer_handler).
    #[arg(long)]
    pub initializer: Option<String>,
    /// For a package without function.yaml: an environment variable KEY=VALUE (function.yaml's
    /// user_data); repeat for more.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = ConfigFlags::parse_env)]
    pub env: Vec<(String, String)>,
}

impl ConfigArgs {
    /// The flags as the package loader takes them.
    pub fn flags(&self) -> ConfigFlags {
        ConfigFlags {
            runtime: self.runtime.clone(),
            handler: self.handler.clone(),
            memory: self.memory,
            timeout: self.timeout,
            initializer: self.initializer.clone(),
            env: self.env.clone(),
        }
    }
}
