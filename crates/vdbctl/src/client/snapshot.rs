//! Snapshots: create, list, restore and delete.

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use vdb_proto::v1 as pb;

use super::show::print_info;
use crate::connection::{Client, server_err};

/// Where snapshots are kept (for every snapshot command).
#[derive(Debug, Args)]
pub struct RepositoryArgs {
    /// The repository: the server's own if not given (`<data>/snapshots`,
    /// or `PREFIX/snapshots` on its object store); an absolute directory
    /// on the server's machine; or s3://BUCKET[/PREFIX], reached with the
    /// server's object store settings.
    #[arg(long, visible_alias = "to", visible_alias = "from")]
    repository: Option<String>,
}

impl RepositoryArgs {
    fn name(&self) -> String {
        self.repository.clone().unwrap_or_default()
    }
}

/// The snapshot commands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot of a collection: it holds every write acknowledged
    /// before the command, and shares the files an earlier snapshot of the
    /// collection stored.
    ///
    /// Example: vdbctl snapshot create images --name nightly --to s3://backups/vdb
    Create(CreateArgs),
    /// List the snapshots of a repository.
    List(RepositoryArgs),
    /// Create a new collection from a snapshot.
    ///
    /// Example: vdbctl snapshot restore nightly --as images_restored
    Restore(RestoreArgs),
    /// Delete a snapshot (and the files of it no other snapshot names).
    Delete(DeleteArgs),
}

/// Arguments of `snapshot create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The collection.
    collection: String,
    /// The snapshot's name ([A-Za-z0-9_-]{1,64}; default the collection's
    /// name and the UTC time).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    repository: RepositoryArgs,
}

/// Arguments of `snapshot restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot.
    snapshot: String,
    /// The new collection's name.
    #[arg(long = "as")]
    name: String,
    #[command(flatten)]
    repository: RepositoryArgs,
}

/// Arguments of `snapshot delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The snapshot.
    snapshot: String,
    #[command(flatten)]
    repository: RepositoryArgs,
}

/// Runs one snapshot command.
pub async fn run(c: &mut Client, json: bool, cmd: &SnapshotCommand) -> Result<()> {
    match cmd {
        SnapshotCommand::Create(a) => {
            let s = c
                .create_snapshot(pb::CreateSnapshotRequest {
                    collection: a.collection.clone(),
                    name: a.name.clone().unwrap_or_default(),
                    repository: a.repository.name(),
                })
                .await
                .map_err(server_err)?
                .into_inner();
            if json {
                println!("{}", snapshot_json(&s));
            } else {
                println!(
                    "snapshot {} of {} in {}: {} files, {}, {} added (the rest shared)",
                    s.name,
                    s.collection,
                    s.repository,
                    s.files,
                    crate::human::bytes(s.bytes),
                    crate::human::bytes(s.added_bytes)
                );
            }
        }
        SnapshotCommand::List(a) => {
            let list = c
                .list_snapshots(pb::ListSnapshotsRequest {
                    repository: a.name(),
                })
                .await
                .map_err(server_err)?
                .into_inner()
                .snapshots;
            if json {
                let all: Vec<Value> = list.iter().map(snapshot_json).collect();
                println!("{}", json!({ "snapshots": all }));
            } else if list.is_empty() {
                println!("no snapshots");
            } else {
                println!(
                    "{:<40} {:<24} {:>12} {:>6} {:>10} {:>4}",
                    "name", "collection", "created", "files", "bytes", "gen"
                );
                for s in &list {
                    println!(
                        "{:<40} {:<24} {:>12} {:>6} {:>10} {:>4}",
                        s.name,
                        s.collection,
                        s.created_at,
                        s.files,
                        crate::human::bytes(s.bytes),
                        s.generation
                    );
                }
            }
        }
        SnapshotCommand::Restore(a) => {
            let info = c
                .restore_snapshot(pb::RestoreSnapshotRequest {
                    snapshot: a.snapshot.clone(),
                    name: a.name.clone(),
                    repository: a.repository.name(),
                })
                .await
                .map_err(server_err)?
                .into_inner();
            print_info(&info, json);
        }
        SnapshotCommand::Delete(a) => {
            c.delete_snapshot(pb::DeleteSnapshotRequest {
                snapshot: a.snapshot.clone(),
                repository: a.repository.name(),
            })
            .await
            .map_err(server_err)?;
            if json {
                println!("{}", json!({ "deleted": a.snapshot }));
            } else {
                println!("deleted snapshot {}", a.snapshot);
            }
        }
    }
    Ok(())
}

fn snapshot_json(s: &pb::SnapshotInfo) -> Value {
    json!({
        "name": s.name,
        "collection": s.collection,
        "created_at": s.created_at,
        "repository": s.repository,
        "generation": s.generation,
        "flushed_lsn": s.flushed_lsn,
        "files": s.files,
        "bytes": s.bytes,
        "added_bytes": s.added_bytes,
    })
}
