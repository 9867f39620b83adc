//! Reads and writes files on a local exec-server: creates a directory,
//! writes, appends, reads back, lists, inspects, renames and removes.
//!
//! `cargo run -p exec-client --example files`

use exec_client::protocol::{
    FsCreateDirectoryParams, FsGetMetadataParams, FsReadDirectoryParams, FsReadFileParams,
    FsRemoveParams, FsRenameParams, FsWriteFileParams,
};
use exec_client::{ConnectOptions, ErrorKind, ExecClient};

/// Runs the example; the error says which expectation failed. Public so
/// that `tests/examples.rs` can run it.
#[tokio::main]
pub async fn main() -> anyhow::Result<()> {
    let client = ExecClient::spawn_local(ConnectOptions::new("files example")).await?;
    let directory = format!(
        "{}/exec-client-files-example-{}",
        std::env::temp_dir().display(),
        std::process::id()
    );
    let notes = format!("{directory}/notes.txt");

    client
        .fs_create_directory(FsCreateDirectoryParams {
            sandbox: None,
            path: directory.clone().into(),
            recursive: Some(true),
        })
        .await?;
    for (text, append) in [("first line\n", false), ("second line\n", true)] {
        client
            .fs_write_file(FsWriteFileParams {
                sandbox: None,
                append: Some(append),
                create_parents: None,
                data_base64: text.as_bytes().into(),
                mode: Some(0o644),
                path: notes.clone().into(),
            })
            .await?;
    }

    let read = client
        .fs_read_file(FsReadFileParams {
            sandbox: None,
            max_bytes: None,
            offset: None,
            path: notes.clone().into(),
        })
        .await?;
    let text = String::from_utf8(read.data_base64.into_inner())?;
    println!("{notes} ({} bytes):\n{text}", read.size);
    anyhow::ensure!(text == "first line\nsecond line\n");

    let renamed = format!("{directory}/renamed.txt");
    client
        .fs_rename(FsRenameParams {
            sandbox: None,
            destination_path: renamed.clone().into(),
            overwrite: None,
            source_path: notes.clone().into(),
        })
        .await?;
    let listing = client
        .fs_read_directory(FsReadDirectoryParams {
            sandbox: None,
            path: directory.clone().into(),
        })
        .await?;
    let names: Vec<&str> = listing
        .entries
        .iter()
        .map(|entry| entry.file_name.as_str())
        .collect();
    println!("{directory} holds {names:?}");
    anyhow::ensure!(names == ["renamed.txt"]);

    let metadata = client
        .fs_get_metadata(FsGetMetadataParams {
            sandbox: None,
            follow_symlinks: None,
            path: renamed.clone().into(),
        })
        .await?;
    println!(
        "renamed.txt: {} bytes, mode {:o}",
        metadata.size,
        metadata.mode & 0o777
    );

    // Errors carry the protocol's machine-readable kind.
    let missing = client
        .fs_read_file(FsReadFileParams {
            sandbox: None,
            max_bytes: None,
            offset: None,
            path: notes.clone().into(),
        })
        .await
        .expect_err("the old name is gone");
    anyhow::ensure!(
        missing.kind() == Some(ErrorKind::NotFound),
        "unexpected error: {missing}"
    );
    println!("reading the old name: {missing}");

    client
        .fs_remove(FsRemoveParams {
            sandbox: None,
            force: None,
            path: directory.clone().into(),
            recursive: Some(true),
        })
        .await?;
    client.close().await?;
    Ok(())
}
