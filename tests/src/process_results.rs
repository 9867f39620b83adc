//! The rules of `process/read` and `process/list` results that the schema
//! cannot state, because they tie one field to another, and that a Codex
//! client relies on.
//!
//! - `nextSeq` is the seq after the last event the read covers (Codex's
//!   `ReadResponse`): every returned chunk is below it. Codex's recovery
//!   takes `nextSeq - 1` as the last event the server has and treats a chunk
//!   above it as a protocol error.
//! - `exitCode` is an integer exactly when the process has exited (`exited`
//!   on a read, `running: false` in a list): Codex reads the exit code of an
//!   exited process as a plain `i32`, so a death by a signal carries 128 + N,
//!   never null.

use serde_json::Value;

/// What breaks the rules above in a schema-valid `process/read` result.
pub fn read_result_problems(result: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(next_seq) = result.get("nextSeq").and_then(Value::as_u64) else {
        return problems;
    };
    let chunk_seqs = result
        .get("chunks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|chunk| chunk.get("seq").and_then(Value::as_u64));
    if let Some(highest) = chunk_seqs.max()
        && highest >= next_seq
    {
        problems.push(format!(
            "`nextSeq` {next_seq} is the seq after the last event the read covers, so it is above every chunk's, but a chunk has seq {highest}"
        ));
    }
    let exited = result.get("exited").and_then(Value::as_bool);
    problems.extend(exit_code_problem(
        exited,
        result.get("exitCode"),
        "the read",
    ));
    problems
}

/// What breaks the rules above in a schema-valid `process/list` result.
pub fn list_result_problems(result: &Value) -> Vec<String> {
    result
        .get("processes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|info| {
            let exited = info
                .get("running")
                .and_then(Value::as_bool)
                .map(|running| !running);
            let process_id = info.get("processId").and_then(Value::as_str).unwrap_or("?");
            exit_code_problem(
                exited,
                info.get("exitCode"),
                &format!("process `{process_id}`"),
            )
        })
        .collect()
}

/// The problem with `exit_code` for a process that has `exited` (or not), if any.
fn exit_code_problem(
    exited: Option<bool>,
    exit_code: Option<&Value>,
    what: &str,
) -> Option<String> {
    let is_integer = exit_code.is_some_and(Value::is_i64);
    match exited? {
        true if !is_integer => Some(format!(
            "{what}: an exited process's `exitCode` is an integer (128 + N after signal N), not {}",
            exit_code.unwrap_or(&Value::Null)
        )),
        false if is_integer => Some(format!(
            "{what}: a running process's `exitCode` is null, not {}",
            exit_code.unwrap_or(&Value::Null)
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;

    fn read(chunk_seqs: &[u64], next_seq: u64, exited: bool, exit_code: Value) -> Value {
        let chunks: Vec<Value> = chunk_seqs
            .iter()
            .map(|seq| json!({"seq": seq, "stream": "stdout", "chunk": ""}))
            .collect();
        json!({"chunks": chunks, "nextSeq": next_seq, "exited": exited, "exitCode": exit_code,
               "signal": null, "closed": exited, "droppedBytes": 0})
    }

    #[test]
    fn next_seq_is_above_every_chunk() {
        assert_eq!(
            read_result_problems(&read(&[1, 2], 3, false, Value::Null)),
            Vec::<String>::new()
        );
        assert_eq!(
            read_result_problems(&read(&[], 1, false, Value::Null)),
            Vec::<String>::new()
        );
        assert_eq!(
            read_result_problems(&read(&[1, 2], 2, false, Value::Null)).len(),
            1
        );
    }

    #[test]
    fn an_exited_process_has_an_integer_exit_code_and_a_running_one_none() {
        assert_eq!(
            read_result_problems(&read(&[], 4, true, json!(137))),
            Vec::<String>::new()
        );
        assert_eq!(
            read_result_problems(&read(&[], 4, true, Value::Null)).len(),
            1
        );
        assert_eq!(
            read_result_problems(&read(&[], 1, false, json!(0))).len(),
            1
        );
        let list = json!({"processes": [
            {"processId": "done", "running": false, "exitCode": 143},
            {"processId": "signaled", "running": false, "exitCode": null},
            {"processId": "live", "running": true, "exitCode": null}
        ]});
        assert_eq!(
            list_result_problems(&list),
            [
                "process `signaled`: an exited process's `exitCode` is an integer (128 + N after signal N), not null"
            ]
        );
    }
}
