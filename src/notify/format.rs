//! The message each receiver format expects, and whether its answer means "accepted". Pure.

use serde_json::{Value, json};

use super::notice::{Notice, title};
use crate::api::NoticeFormat;

/// The JSON body to POST for `n` in `format`.
pub fn payload(format: NoticeFormat, n: &Notice) -> Value {
    let title = title(n);
    let context = format!("{} · {} · {}", n.namespace, n.object, n.time);
    match format {
        NoticeFormat::Webhook => json!({
            "kind": n.kind.as_str(),
            "title": title,
            "reason": n.reason,
            "severity": if n.warning { "warning" } else { "info" },
            "namespace": n.namespace,
            "object": n.object,
            "app": n.app,
            "environment": n.environment,
            "message": n.message,
            "time": n.time.to_string(),
        }),
        NoticeFormat::Slack => {
            let text = format!("*{}*\n{}", slack_escape(&title), slack_escape(&n.message));
            json!({
                "text": text,
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": text}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": slack_escape(&context)}]},
                ],
            })
        }
        NoticeFormat::Teams => {
            let facts: Vec<Value> = [("App", n.app.as_deref()), ("Environment", n.environment.as_deref())]
                .into_iter()
                .filter_map(|(k, v)| Some(json!({"title": k, "value": v?})))
                .chain(std::iter::once(
                    json!({"title": "Object", "value": format!("{}/{}", n.namespace, n.object)}),
                ))
                .collect();
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": true,
                             "color": if n.warning { "Attention" } else { "Good" }},
                            {"type": "TextBlock", "text": n.message, "wrap": true},
                            {"type": "FactSet", "facts": facts},
                        ],
                    },
                }],
            })
        }
        NoticeFormat::DingTalk => json!({
            "msgtype": "markdown",
            "markdown": {"title": title, "text": format!("### {title}\n\n{}\n\n> {context}", n.message)},
        }),
        NoticeFormat::WeCom => {
            let color = if n.warning { "warning" } else { "info" };
            json!({
                "msgtype": "markdown",
                "markdown": {"content": format!(
                    "**<font color=\"{color}\">{title}</font>**\n> {}\n> <font color=\"comment\">{context}</font>",
                    n.message
                )},
            })
        }
        NoticeFormat::Feishu => json!({
            "msg_type": "interactive",
            "card": {
                "header": {"title": {"tag": "plain_text", "content": title}, "template": if n.warning { "red" } else { "green" }},
                "elements": [
                    {"tag": "div", "text": {"tag": "plain_text", "content": n.message}},
                    {"tag": "note", "elements": [{"tag": "plain_text", "content": context}]},
                ],
            },
        }),
    }
}

/// Whether the receiver accepted the message: a 2xx status and, for the chat APIs that answer
/// 200 with an error code in the body (DingTalk, WeCom: `errcode`; Feishu: `code`), a zero code.
pub fn accepted(format: NoticeFormat, status: u16, body: &str) -> Result<(), String> {
    // No part of an answer is quoted: the URL comes from a tenant's Secret and may point at a
    // service whose answer is nobody else's to read.
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}"));
    }
    let field = match format {
        NoticeFormat::DingTalk | NoticeFormat::WeCom => "errcode",
        NoticeFormat::Feishu => "code",
        _ => return Ok(()),
    };
    let answer: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    match answer.get(field).and_then(Value::as_i64) {
        Some(code) if code != 0 => {
            // The code, not the text beside it: the chat API documents its codes, and text
            // from an answer is not quoted (see above).
            Err(format!("HTTP {status} but {field} {code} (see the chat API's error codes)"))
        }
        _ => Ok(()),
    }
}

/// Slack treats `<`, `>` and `&` as markup.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::NoticeKind;

    fn notice(warning: bool) -> Notice {
        Notice {
            kind: if warning { NoticeKind::RolloutFailed } else { NoticeKind::RolloutSucceeded },
            key: "u/1".into(),
            time: "2026-12-06T10:00:00Z".parse().unwrap(),
            reason: "ProgressDeadlineExceeded".into(),
            warning,
            namespace: "finance".into(),
            object: "Release/payments-prod".into(),
            app: Some("payments".into()),
            environment: Some("prod".into()),
            message: "version 1.3.11: <3 pods> & not healthy".into(),
        }
    }

    #[test]
    fn each_format_carries_the_title_and_the_message() {
        let n = notice(true);
        let title = "Rollout failed: payments in prod";
        let webhook = payload(NoticeFormat::Webhook, &n);
        assert_eq!(webhook["kind"], "RolloutFailed");
        assert_eq!(
            (webhook["app"].as_str(), webhook["environment"].as_str()),
            (Some("payments"), Some("prod"))
        );
        assert_eq!(webhook["severity"], "warning");
        let slack = payload(NoticeFormat::Slack, &n);
        assert_eq!(slack["text"], format!("*{title}*\nversion 1.3.11: &lt;3 pods&gt; &amp; not healthy"));
        assert_eq!(slack["blocks"][0]["text"]["type"], "mrkdwn");
        let teams = payload(NoticeFormat::Teams, &n);
        let card = &teams["attachments"][0];
        assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(card["content"]["body"][0]["text"], title);
        assert_eq!(card["content"]["body"][0]["color"], "Attention");
        assert_eq!(card["content"]["body"][2]["facts"][1]["value"], "prod");
        let ding = payload(NoticeFormat::DingTalk, &n);
        assert_eq!(
            (ding["msgtype"].as_str(), ding["markdown"]["title"].as_str()),
            (Some("markdown"), Some(title))
        );
        let wecom = payload(NoticeFormat::WeCom, &n);
        assert!(
            wecom["markdown"]["content"].as_str().unwrap().contains("<font color=\"warning\">Rollout failed")
        );
        let feishu = payload(NoticeFormat::Feishu, &n);
        assert_eq!(feishu["msg_type"], "interactive");
        assert_eq!(feishu["card"]["header"]["template"], "red");
        assert_eq!(feishu["card"]["header"]["title"]["content"], title);
        assert_eq!(payload(NoticeFormat::Feishu, &notice(false))["card"]["header"]["template"], "green");
    }

    #[test]
    fn answers_that_mean_refused() {
        use NoticeFormat::*;
        let cases = [
            (Slack, 200, "ok", true),
            (Webhook, 204, "", true),
            (Webhook, 503, "down", false),
            (DingTalk, 200, r#"{"errcode":0,"errmsg":"ok"}"#, true),
            (DingTalk, 200, r#"{"errcode":310000,"errmsg":"keywords not in content"}"#, false),
            (WeCom, 200, r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#, false),
            (Feishu, 200, r#"{"code":0,"msg":"success"}"#, true),
            (Feishu, 200, r#"{"code":19021,"msg":"sign match fail"}"#, false),
            (Teams, 202, "", true),
        ];
        for (format, status, body, ok) in cases {
            assert_eq!(accepted(format, status, body).is_ok(), ok, "{format:?} {status} {body}");
        }
        let refused =
            accepted(DingTalk, 200, r#"{"errcode":310000,"errmsg":"keywords not in content"}"#).unwrap_err();
        assert!(refused.contains("errcode 310000") && !refused.contains("keywords"), "{refused}");
        assert_eq!(accepted(Webhook, 503, "internal SECRET").unwrap_err(), "HTTP 503");
    }
}
