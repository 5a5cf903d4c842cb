//! The `tuskfish` command line (also installed as the kubectl plugin `kubectl-tuskfish`): the
//! operator, and the verbs a release manager uses every day.

pub mod error;
pub mod flow;
pub mod git;
pub mod gitflow;
pub mod gitops;
pub mod helm_args;
pub mod operator;
pub mod output;
pub mod reference;
pub mod run_agent;
pub mod session;
pub mod verbs;
pub mod wait;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::client::Target;
use error::{CliError, CliResult};
use output::Output;
use session::Session;

const EXIT_CODES: &str = "\
Exit codes:
  0  done (with --wait: the rollout is Healthy)
  1  failed: the rollout became Degraded/Failed, or the server refused the change
  2  bad arguments
  3  not found: unknown environment, app, version or Release
  4  not allowed by RBAC
  5  no usable kubeconfig, or the API server cannot be reached
  6  --wait timed out (the rollout goes on in the cluster)";

#[derive(Parser)]
#[command(
    name = "tuskfish",
    version,
    about = "Application & environment pipeline for Kubernetes: the operator and its CLI",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Path to a kubeconfig (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, global = true, env = "TUSKFISH_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    /// Act as this user, as `kubectl --as` does (your kubeconfig's user must be allowed to
    /// impersonate; the API server then checks everything as that user).
    #[arg(long = "as", global = true, value_name = "USER")]
    as_user: Option<String>,
    /// Act in this group too (repeatable), as `kubectl --as-group`.
    #[arg(long = "as-group", global = true, value_name = "GROUP", requires = "as_user")]
    as_groups: Vec<String>,
    /// Namespace of the pipeline's Environments, AppVersions and Releases (default: the context's).
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Log format (the operator's logs).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "TUSKFISH_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone, Copy)]
struct WaitArgs {
    /// Follow the rollout until it is Healthy (exit 0) or Degraded/Failed (exit 1).
    #[arg(long)]
    wait: bool,
    /// How long --wait waits before giving up (exit 6), e.g. 90s, 10m.
    #[arg(long, default_value = "10m", value_parser = duration_arg)]
    timeout: Duration,
}

/// Where a version change goes when git owns it.
#[derive(Args, Clone)]
struct GitArgs {
    /// A checkout of the GitOps repository: when a GitOps tool applies the Release's version
    /// from git, change that one line there and commit it (instead of refusing, exit 7).
    #[arg(long, value_name = "DIR")]
    git: Option<PathBuf>,
    /// With --git: push the commit to origin.
    #[arg(long, requires = "git")]
    push: bool,
}

impl GitArgs {
    fn edit(&self) -> Option<git::GitEdit<'_>> {
        self.git.as_deref().map(|dir| git::GitEdit { dir, push: self.push })
    }
}

impl WaitArgs {
    fn get(self) -> Option<Duration> {
        self.wait.then_some(self.timeout)
    }
}

/// A duration flag (`90s`, `10m`, `2h`) for clap.
pub(crate) fn duration_arg(s: &str) -> Result<Duration, String> {
    crate::duration::parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration like 2s, 90s or 10m"))
}

/// Which audit records `audit` and `insights` read.
#[derive(Args, Debug, Clone)]
pub struct RecordsArgs {
    /// Only this environment.
    #[arg(long)]
    env: Option<String>,
    /// Only this app.
    #[arg(long)]
    app: Option<String>,
    /// How far back from now: `90d`, `12h`.
    #[arg(long, default_value = "90d", value_parser = duration_arg)]
    since: std::time::Duration,
}

#[derive(Subcommand)]
enum ProductCommand {
    /// Each product in each environment, its apps below it.
    Status,
    /// Pin the product in an environment to a product version (its gates still apply).
    Deploy {
        /// The product version, e.g. 1.3.10.
        version: String,
        #[arg(long)]
        env: String,
        /// The product (needed when several run in the environment).
        #[arg(long)]
        product: Option<String>,
    },
    /// Approve a product version for an environment that requires approval, as you.
    Approve {
        /// The product version, e.g. 1.3.10.
        version: String,
        #[arg(long)]
        env: String,
        #[arg(long)]
        product: Option<String>,
        /// Why (a change ticket), recorded with the approval.
        #[arg(long)]
        reason: Option<String>,
        /// Reject instead: the version does not roll out there.
        #[arg(long)]
        reject: bool,
    },
    /// Record what runs healthy in an environment as a new product version (refused while
    /// anything there is not healthy).
    Snapshot {
        /// The environment whose running versions make up the product version.
        #[arg(long)]
        env: String,
        /// The new product version, e.g. 1.4.0-rc.1.
        #[arg(long)]
        version: String,
        /// The product (needed when the pipeline has several).
        #[arg(long)]
        product: Option<String>,
        /// Say what would be recorded, record nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Per app: the versions and change ids between two product versions or environments (a 1.3
    /// hotfix's ids missing from the 1.4 line show under "only in" the 1.3 side).
    Diff {
        /// A product version (1.3.10) or an environment.
        a: String,
        /// Another product version or environment.
        b: String,
        /// The product, when several have the version named.
        #[arg(long)]
        product: Option<String>,
        /// Exit 1 when the two differ.
        #[arg(long)]
        exit_code: bool,
    },
}

#[derive(Subcommand)]
enum Command {
    /// The pipeline: apps × environments, what runs where and what waits.
    Status {
        /// Redraw whenever something changes (from a watch, not polling).
        #[arg(short, long)]
        watch: bool,
    },
    /// Serve the web view of the pipeline (live, from a watch), with deploy, promote, rollback,
    /// approve/reject and freeze/unfreeze acting as you (your RBAC decides).
    Web {
        /// Where to listen. Loopback by default: reach it remotely through `kubectl port-forward`
        /// or an SSH tunnel, not by binding a public address.
        #[arg(long, default_value = "127.0.0.1:8090")]
        addr: std::net::SocketAddr,
        /// Show every namespace's pipeline (default: only `-n` / the context's namespace).
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Offer no actions: a page to look at only.
        #[arg(long)]
        read_only: bool,
        /// A host name the view answers to besides IP addresses and localhost (the name of a
        /// tunnel in front of it); requests for any other name are refused (DNS rebinding).
        #[arg(long = "allow-host", value_name = "NAME")]
        allow_hosts: Vec<String>,
    },
    /// Deploy a version to an environment (pins the Release; creates it if needed).
    Deploy {
        /// The app (as in `AppVersion.spec.app`).
        app: String,
        /// The version (semver, as published).
        version: String,
        /// The environment (an Environment of the pipeline namespace).
        #[arg(long)]
        env: String,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        git: GitArgs,
        /// Change nothing: render the version for the environment, apply it server-side as a dry
        /// run, and show each object's diff, what would be pruned, the change ids and the gates.
        #[arg(long, conflicts_with_all = ["wait", "git"])]
        dry_run: bool,
    },
    /// Deploy to one environment what runs healthy in another.
    Promote {
        /// The app (as in `AppVersion.spec.app`).
        app: String,
        /// The environment whose healthy version is deployed.
        #[arg(long)]
        from: String,
        /// The environment to deploy it to.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        git: GitArgs,
        /// Change nothing: render the version for the environment, apply it server-side as a dry
        /// run, and show each object's diff, what would be pruned, the change ids and the gates.
        #[arg(long, conflicts_with_all = ["wait", "git"])]
        dry_run: bool,
    },
    /// Roll back to an earlier healthy version (the newest one before the current, or --to).
    Rollback {
        /// The app (as in `AppVersion.spec.app`).
        app: String,
        /// The environment (an Environment of the pipeline namespace).
        #[arg(long)]
        env: String,
        /// The version to return to (must have run healthy in this environment).
        #[arg(long, conflicts_with = "clear")]
        to: Option<String>,
        /// End a manual rollback: the Release follows its spec's version source again.
        #[arg(long)]
        clear: bool,
        #[command(flatten)]
        wait: WaitArgs,
        /// Change nothing: show what rolling back would apply (see deploy --dry-run).
        #[arg(long, conflicts_with_all = ["clear", "wait"])]
        dry_run: bool,
    },
    /// Approve a version of an app for an environment that requires approval.
    Approve {
        /// The app (as in `AppVersion.spec.app`).
        app: String,
        /// The version (semver, as published).
        version: String,
        /// The environment (an Environment of the pipeline namespace).
        #[arg(long)]
        env: String,
        /// Why (recorded with your name, e.g. a change ticket).
        #[arg(long)]
        reason: Option<String>,
        /// Must be you: the approver is the user the API server authenticated (SelfSubjectReview).
        #[arg(long)]
        approver: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
        /// Approve nothing: show what the approved version would apply there (see deploy --dry-run).
        #[arg(long, conflicts_with = "wait")]
        dry_run: bool,
    },
    /// Reject a version of an app for an environment: it does not roll out there; a newer version
    /// needs approvals of its own.
    Reject {
        /// The app (as in `AppVersion.spec.app`).
        app: String,
        /// The version (semver, as published).
        version: String,
        /// The environment (an Environment of the pipeline namespace).
        #[arg(long)]
        env: String,
        /// Why (recorded with your name).
        #[arg(long)]
        reason: String,
    },
    /// Stop new versions from rolling out to an environment, or to every environment of the
    /// pipeline at once with --all (rollbacks still go ahead).
    Freeze {
        /// The environment to freeze (or --all).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        env: Option<String>,
        /// Stop the line: freeze every Environment of the pipeline namespace.
        #[arg(long)]
        all: bool,
        /// Why (recorded with your name in an Event).
        #[arg(long)]
        reason: String,
        /// For how long, e.g. 2h (default: until unfrozen).
        #[arg(long = "for", value_name = "DURATION")]
        for_: Option<String>,
        /// Until when, RFC 3339 (default: until unfrozen).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
    },
    /// End the environment's one-off freezes, or let one app through any freeze (--override);
    /// --all lifts a stopped line (the windows `freeze --all` set) in every environment.
    Unfreeze {
        /// The environment to unfreeze (or --all).
        #[arg(required_unless_present = "all", conflicts_with_all = ["all"])]
        env: Option<String>,
        /// Lift the line stop in every Environment of the pipeline namespace.
        #[arg(long, conflicts_with = "override_app")]
        all: bool,
        /// Why (recorded with your name in an Event).
        #[arg(long)]
        reason: Option<String>,
        /// Let this app deploy despite the freeze (recorded in its history).
        #[arg(long = "override", value_name = "APP", requires = "reason")]
        override_app: Option<String>,
    },
    /// Mark a published version bad in the whole pipeline: no environment deploys it, and where it
    /// runs, Releases with automatic rollback roll back (--lift undoes it).
    Veto {
        /// The app (as in `AppVersion.spec.app`).
        app: String,
        /// The version (semver, as published).
        version: String,
        /// Why (recorded with your name on the AppVersion, in history and in an Event).
        #[arg(long, required_unless_present = "lift")]
        reason: Option<String>,
        /// Lift the veto: the version may be deployed again.
        #[arg(long)]
        lift: bool,
    },
    /// Run the verification checks (spec.verify) of what runs in an environment again, and wait for
    /// their results (exit 1 when one fails).
    Verify {
        /// The app (as in `AppVersion.spec.app`).
        app: String,
        /// The environment (an Environment of the pipeline namespace).
        #[arg(long)]
        env: String,
        /// How long to wait for the checks before giving up (exit 6), e.g. 90s, 10m.
        #[arg(long, default_value = "10m", value_parser = duration_arg)]
        timeout: Duration,
    },
    /// Gitflow, run: `flow feature|release|hotfix start|finish NAME`. Start branches from the right
    /// base; finish merges where Gitflow says (a hotfix into main with a tag, develop and every newer
    /// release branch), deletes the branch and prints each line's next version. A conflict changes
    /// nothing.
    Flow {
        kind: flow::Kind,
        action: flow::Action,
        /// A feature's name (FIN-142-rounding), a release's version (1.4) or a hotfix's (1.3.10).
        name: String,
        /// Start a hotfix from here instead of main (a support branch or a release tag of an older line).
        #[arg(long)]
        from: Option<String>,
        /// Push what changed to origin, all or nothing.
        #[arg(long)]
        push: bool,
        /// The work tree (default: the current directory).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// The story board: every change id, the environments it runs in and those still missing it
    /// (`changes FIN-142`: is it in prod yet?).
    Changes {
        /// One change id (case does not matter).
        id: Option<String>,
        /// Only the changes of this app.
        #[arg(long)]
        app: Option<String>,
        /// `story`, `bug`, … as the AppVersions type them.
        #[arg(long = "type")]
        type_: Option<String>,
        /// Only changes that run in, or are missing from, this environment.
        #[arg(long)]
        env: Option<String>,
    },
    /// The audit trail: every rollout's record (who asked, on whose approval, from which version),
    /// oldest first, from the pipeline's Ledgers; `-o csv` for a spreadsheet.
    Audit {
        #[command(flatten)]
        records: RecordsArgs,
    },
    /// Delivery figures per app and environment from the audit records: deploy frequency, lead
    /// time for changes (publish → running here), change failure rate, time to restore.
    Insights {
        #[command(flatten)]
        records: RecordsArgs,
    },
    /// Rollouts of an app in an environment, newest first.
    History {
        /// The app (as in `AppVersion.spec.app`).
        app: String,
        /// The environment (an Environment of the pipeline namespace).
        #[arg(long)]
        env: String,
    },
    /// What differs between two environments: versions, change ids, forward-port gaps.
    Diff {
        /// One environment.
        a: String,
        /// The other environment.
        b: String,
        /// Exit 1 when the environments differ (like `git diff --exit-code`).
        #[arg(long)]
        exit_code: bool,
        /// Compare what each app's running version renders to in A and in B, object by object.
        #[arg(long)]
        rendered: bool,
    },
    /// Products: a platform version as a set of app versions (status, snapshot, diff).
    #[command(subcommand)]
    Product(ProductCommand),
    /// The next version of this Git work tree by Gitflow (and its change ids).
    Version {
        /// The work tree (default: the current directory).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The branch, when HEAD is detached and no CI variable names it.
        #[arg(long)]
        branch: Option<String>,
        /// Regex for change ids in commit subjects; its first group is the id.
        #[arg(long, default_value = gitflow::DEFAULT_CHANGE_PATTERN)]
        change_pattern: String,
        /// Print an AppVersion manifest for `kubectl apply` (needs --app, and --image or --chart).
        #[arg(long, requires = "app")]
        emit_appversion: bool,
        /// The app (as in `AppVersion.spec.app`).
        #[arg(long)]
        app: Option<String>,
        /// Container image; `{version}` is replaced by the version.
        #[arg(long, conflicts_with = "chart")]
        image: Option<String>,
        /// A chart instead of an image: REPOSITORY/CHART (`oci://…/payments` or an HTTP(S) chart
        /// repository URL and the chart's name), at the computed version.
        #[arg(long)]
        chart: Option<String>,
        /// Secret (in the AppVersion's namespace) with the chart repository's username and password.
        #[arg(long, requires = "chart")]
        chart_secret: Option<String>,
        /// The OCI registry of --chart speaks plain HTTP.
        #[arg(long, requires = "chart")]
        plain_http: bool,
        /// Container port NAME:PORT[/PROTOCOL] (repeatable).
        #[arg(long = "port")]
        ports: Vec<String>,
        /// Replicas of the workload in the emitted AppVersion.
        #[arg(long)]
        replicas: Option<i32>,
    },
    /// Print shell completion for bash, zsh, fish, elvish or powershell.
    Completion { shell: clap_complete::Shell },
    /// Run the operator.
    Run(operator::RunArgs),
    /// Run an agent inside a cluster the operator cannot reach: it deploys the Environments that
    /// name it from the hub's pipeline and reports back (`--hub-kubeconfig`).
    Agent(run_agent::AgentArgs),
    /// Print the CustomResourceDefinitions and the Approval identity policy as YAML
    /// (`tuskfish crd | kubectl apply --server-side -f -`).
    Crd {
        /// `all`, `crds` (CRDs alone) or `policy` (the ValidatingAdmissionPolicy and its binding).
        #[arg(long, value_enum, default_value = "all")]
        only: crate::Definitions,
    },
    /// Print a page of the book's reference, generated from the code (`make generate`).
    #[command(hide = true)]
    Reference {
        #[arg(value_enum)]
        page: reference::Page,
        /// With `man`: the directory to write one page per verb into.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TUSKFISH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour codes only where a person reads them, not in log files or collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Entry point of both binaries; `bin_name` is how the user called us (for completion scripts).
pub async fn main(bin_name: &str) -> ExitCode {
    let cli = Cli::parse();
    let target = Target {
        kubeconfig: cli.kubeconfig.clone(),
        context: cli.context.clone(),
        impersonate: cli.as_user.clone(),
        impersonate_groups: cli.as_groups.clone(),
    };
    match &cli.command {
        Command::Run(args) => {
            init_logging(cli.log_format, "info,kube_runtime=warn,kube_client::client::tls=error");
            return report(operator::run_operator(target, args.clone()).await);
        }
        Command::Agent(args) => {
            init_logging(cli.log_format, "info,kube_runtime=warn,kube_client::client::tls=error");
            return report(run_agent::run_agent(target, args.clone()).await);
        }
        _ => init_logging(cli.log_format, "warn,kube_client::client::tls=error"),
    }
    match run_verb(cli, target, bin_name).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn report(result: Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("tuskfish: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_verb(cli: Cli, target: Target, bin_name: &str) -> CliResult<ExitCode> {
    // Commands that need no cluster.
    match cli.command {
        Command::Crd { only } => {
            let yaml = crate::crd_yaml(only).map_err(|e| CliError::Failed(format!("writing CRDs: {e}")))?;
            print!("{yaml}");
            return Ok(ExitCode::SUCCESS);
        }
        Command::Reference { page: reference::Page::Man, out } => {
            let dir = out.ok_or_else(|| CliError::Usage("man pages need --out DIR".into()))?;
            reference::man_pages(&Cli::command(), &dir)
                .map_err(|e| CliError::Failed(format!("writing man pages into {}: {e}", dir.display())))?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Reference { page, .. } => {
            print!("{}", reference::page(page, &Cli::command()));
            return Ok(ExitCode::SUCCESS);
        }
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), bin_name, &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Flow { kind, action, name, from, push, dir } => {
            let args =
                verbs::flow::FlowArgs { dir: &dir, kind, action, name: &name, from: from.as_deref(), push };
            verbs::flow::flow(args)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Version {
            dir,
            branch,
            change_pattern,
            emit_appversion,
            app,
            image,
            chart,
            chart_secret,
            plain_http,
            ports,
            replicas,
        } => {
            use verbs::version::{Deploys, EmitArgs};
            let what = match (image.as_deref(), chart.as_deref()) {
                (Some(image), _) => Some(Deploys::Image { image, ports: &ports, replicas }),
                (None, Some(reference)) => {
                    Some(Deploys::Chart { reference, secret: chart_secret.as_deref(), plain_http })
                }
                (None, None) => None,
            };
            let emit = match (emit_appversion, app.as_deref(), what) {
                (true, Some(app), Some(what)) => Some(EmitArgs { app, what }),
                (true, _, _) => {
                    return Err(CliError::Usage(
                        "--emit-appversion needs --app, and --image or --chart".into(),
                    ));
                }
                (false, _, _) => None,
            };
            verbs::version::version(verbs::version::VersionArgs {
                dir: &dir,
                branch: branch.as_deref(),
                change_pattern: &change_pattern,
                emit,
                namespace: cli.namespace.as_deref(),
                output: cli.output,
            })?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let s = Session::connect(target, cli.namespace, cli.output).await?;
    match cli.command {
        Command::Status { watch } => verbs::status::status(&s, watch).await?,
        Command::Web { addr, all_namespaces, read_only, allow_hosts } => {
            verbs::web::web(&s, addr, all_namespaces, read_only, allow_hosts).await?
        }
        Command::Deploy { app, version, env, dry_run: true, .. } => {
            verbs::preview::preview(&s, &app, &env, &session::parse_version(&version)?).await?
        }
        Command::Deploy { app, version, env, wait, git, .. } => {
            verbs::deploy::deploy(&s, &app, &version, &env, wait.get(), git.edit().as_ref()).await?
        }
        Command::Promote { app, from, to, dry_run: true, .. } => {
            let version = verbs::deploy::promotable(&s, &app, &from).await?;
            verbs::preview::preview(&s, &app, &to, &version).await?
        }
        Command::Promote { app, from, to, wait, git, .. } => {
            verbs::deploy::promote(&s, &app, &from, &to, wait.get(), git.edit().as_ref()).await?
        }
        Command::Rollback { app, env, to, dry_run: true, .. } => {
            let release = s.existing_release(&app, &env).await?;
            let status = release.status.clone().unwrap_or_default();
            let name = kube::ResourceExt::name_any(&release);
            let target = verbs::deploy::rollback_target(&name, &env, &status, to.as_deref())?;
            verbs::preview::preview(&s, &app, &env, &session::parse_version(&target)?).await?
        }
        Command::Approve { app, version, env, dry_run: true, .. } => {
            verbs::preview::preview(&s, &app, &env, &session::parse_version(&version)?).await?
        }
        Command::Rollback { app, env, to, clear, wait, .. } => {
            verbs::deploy::rollback(&s, &app, &env, to.as_deref(), clear, wait.get()).await?;
        }
        Command::Approve { app, version, env, reason, approver, wait, .. } => {
            let args = verbs::approve::ApproveArgs {
                app: &app,
                version: &version,
                env: &env,
                reason,
                approver,
                decision: crate::api::Decision::Approve,
                wait_for: wait.get(),
            };
            verbs::approve::approve(&s, args).await?;
        }
        Command::Reject { app, version, env, reason } => {
            let args = verbs::approve::ApproveArgs {
                app: &app,
                version: &version,
                env: &env,
                reason: Some(reason),
                approver: None,
                decision: crate::api::Decision::Reject,
                wait_for: None,
            };
            verbs::approve::approve(&s, args).await?;
        }
        Command::Freeze { env, all: _, reason, for_, until } => {
            let until = verbs::freeze::parse_until(for_.as_deref(), until.as_deref())?;
            match env {
                Some(env) => verbs::freeze::freeze(&s, &env, &reason, until).await?,
                None => verbs::freeze::stop_the_line(&s, &reason, until).await?,
            }
        }
        Command::Unfreeze { env, all: _, reason, override_app } => match (env, override_app, reason) {
            (None, _, reason) => verbs::freeze::restart_the_line(&s, reason.as_deref()).await?,
            (Some(env), Some(app), Some(reason)) => {
                verbs::freeze::override_freeze(&s, &env, &app, &reason).await?
            }
            (Some(_), Some(_), None) => return Err(CliError::Usage("--override needs --reason".into())),
            (Some(env), None, reason) => verbs::freeze::unfreeze(&s, &env, reason.as_deref()).await?,
        },
        Command::Veto { app, version, reason, lift } => match (lift, reason) {
            (true, reason) => verbs::veto::lift(&s, &app, &version, reason.as_deref()).await?,
            (false, Some(reason)) => verbs::veto::veto(&s, &app, &version, &reason).await?,
            (false, None) => return Err(CliError::Usage("veto needs --reason (or --lift)".into())),
        },
        Command::Verify { app, env, timeout } => verbs::verify::verify(&s, &app, &env, timeout).await?,
        Command::Changes { id, app, type_, env } => {
            let filter = crate::matrix::stories::Filter { id, app, type_, environment: env };
            verbs::changes::changes(&s, filter).await?
        }
        Command::Audit { records: RecordsArgs { env, app, since } } => {
            verbs::audit::audit(&s, verbs::audit::Filter { env, app, since }).await?
        }
        Command::Insights { records: RecordsArgs { env, app, since } } => {
            verbs::insights::insights(&s, env.as_deref(), app.as_deref(), since).await?
        }
        Command::History { app, env } => verbs::history::history(&s, &app, &env).await?,
        Command::Diff { a, b, exit_code, rendered } => {
            let differs = if rendered {
                verbs::diff::rendered(&s, &a, &b).await?
            } else {
                verbs::diff::diff(&s, &a, &b).await?
            };
            if exit_code && differs {
                return Ok(ExitCode::from(error::exit::FAILED));
            }
        }
        Command::Product(ProductCommand::Status) => verbs::product::status(&s).await?,
        Command::Product(ProductCommand::Deploy { version, env, product }) => {
            verbs::product::deploy(&s, &env, &version, product.as_deref()).await?
        }
        Command::Product(ProductCommand::Approve { version, env, product, reason, reject }) => {
            let decision = if reject { crate::api::Decision::Reject } else { crate::api::Decision::Approve };
            verbs::product::approve(&s, &env, &version, product.as_deref(), reason, decision).await?
        }
        Command::Product(ProductCommand::Snapshot { env, version, product, dry_run }) => {
            verbs::product::snapshot(&s, &env, &version, product.as_deref(), dry_run).await?
        }
        Command::Product(ProductCommand::Diff { a, b, product, exit_code }) => {
            if verbs::product::diff(&s, &a, &b, product.as_deref()).await? && exit_code {
                return Ok(ExitCode::from(error::exit::FAILED));
            }
        }
        Command::Version { .. }
        | Command::Flow { .. }
        | Command::Completion { .. }
        | Command::Crd { .. }
        | Command::Reference { .. }
        | Command::Run(_)
        | Command::Agent(_) => {}
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    /// clap checks its definitions only when a command is parsed; a clash (two arguments with one
    /// id, e.g. from a flattened group) would otherwise panic at the first `tuskfish run`.
    #[test]
    fn the_command_line_definitions_are_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
