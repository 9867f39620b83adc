//! Prints every protocol type rendered as TypeScript by ts-rs, as a JSON list
//! of `[file name, contents]` pairs. `cargo xtask codegen` runs it; it is built
//! only with the `ts` feature.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Integers are JavaScript numbers: exact up to 2^53 - 1, which every
    // count, size, sequence number and time in the protocol stays below.
    let config = ts_rs::Config::new()
        .with_large_int("number")
        .with_import_extension(Some("js"));
    let files: Vec<(String, String)> = exec_protocol::typescript_declarations(&config)?
        .into_iter()
        .map(|(path, contents)| (path.to_string_lossy().into_owned(), contents))
        .collect();
    println!("{}", serde_json::to_string(&files)?);
    Ok(())
}
