//! `pixmirror import-oss` (the real binary) on website and style XML in the
//! shape of Aliyun's documented examples: every mapped option becomes
//! pixmirror TOML that `check-config` accepts and that serves the expected
//! mirror fetches against a loopback origin; everything else is reported with
//! its rule number.

mod common;

use std::path::Path;

use common::origin::Origin;
use common::{get, request, Backend, Env, TestServer};

fn website(origin: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<WebsiteConfiguration>
  <IndexDocument>
    <Suffix>index.html</Suffix>
    <SupportSubDir>true</SupportSubDir>
    <Type>0</Type>
  </IndexDocument>
  <ErrorDocument>
    <Key>error.html</Key>
    <HttpStatus>404</HttpStatus>
  </ErrorDocument>
  <RoutingRules>
    <RoutingRule>
      <RuleNumber>2</RuleNumber>
      <Condition>
        <KeyPrefixEquals>multi/</KeyPrefixEquals>
        <HttpErrorCodeReturnedEquals>404</HttpErrorCodeReturnedEquals>
      </Condition>
      <Redirect>
        <RedirectType>Mirror</RedirectType>
        <MirrorURL>http://{origin}/fail/</MirrorURL>
        <MirrorURLSlave>http://{origin}/fail/</MirrorURLSlave>
        <MirrorMultiAlternates>
          <MirrorMultiAlternate>
            <MirrorMultiAlternateNumber>1</MirrorMultiAlternateNumber>
            <MirrorMultiAlternateURL>http://{origin}/render/</MirrorMultiAlternateURL>
          </MirrorMultiAlternate>
        </MirrorMultiAlternates>
        <MirrorFollowRedirect>false</MirrorFollowRedirect>
        <MirrorSwitchAllErrors>true</MirrorSwitchAllErrors>
      </Redirect>
    </RoutingRule>
    <RoutingRule>
      <RuleNumber>1</RuleNumber>
      <Condition>
        <KeyPrefixEquals>users/</KeyPrefixEquals>
        <KeySuffixEquals>.jpg</KeySuffixEquals>
        <HttpErrorCodeReturnedEquals>404</HttpErrorCodeReturnedEquals>
      </Condition>
      <Redirect>
        <RedirectType>Mirror</RedirectType>
        <PassQueryString>false</PassQueryString>
        <MirrorURL>http://{origin}/render/</MirrorURL>
        <MirrorPassQueryString>true</MirrorPassQueryString>
        <MirrorFollowRedirect>true</MirrorFollowRedirect>
        <MirrorCheckMd5>false</MirrorCheckMd5>
        <MirrorHeaders>
          <PassAll>false</PassAll>
          <Pass>X-Trace</Pass>
          <Pass>Cookie</Pass>
          <Remove>Cookie</Remove>
          <Set>
            <Key>X-Api-Key</Key>
            <Value>k1</Value>
          </Set>
        </MirrorHeaders>
        <MirrorSaveOssMeta>true</MirrorSaveOssMeta>
        <MirrorSNI>true</MirrorSNI>
      </Redirect>
    </RoutingRule>
    <RoutingRule>
      <RuleNumber>3</RuleNumber>
      <Condition>
        <KeyPrefixEquals>old/</KeyPrefixEquals>
        <HttpErrorCodeReturnedEquals>404</HttpErrorCodeReturnedEquals>
      </Condition>
      <Redirect>
        <RedirectType>Mirror</RedirectType>
        <MirrorURL>http://{origin}/render/</MirrorURL>
        <EnableReplacePrefix>true</EnableReplacePrefix>
        <ReplaceKeyPrefixWith>new/</ReplaceKeyPrefixWith>
        <MirrorCheckMd5>true</MirrorCheckMd5>
        <MirrorFutureOption>1</MirrorFutureOption>
      </Redirect>
    </RoutingRule>
    <RoutingRule>
      <RuleNumber>4</RuleNumber>
      <Condition>
        <KeySuffixEquals>.png</KeySuffixEquals>
        <HttpErrorCodeReturnedEquals>404</HttpErrorCodeReturnedEquals>
      </Condition>
      <Redirect>
        <RedirectType>Mirror</RedirectType>
        <MirrorURL>http://{origin}/img</MirrorURL>
        <ReplaceKeyWith>assets/${{key}}</ReplaceKeyWith>
        <MirrorProxyPass>true</MirrorProxyPass>
        <MirrorReturnHeaders><ReturnHeader><Key>k</Key><Value>v</Value></ReturnHeader></MirrorReturnHeaders>
      </Redirect>
    </RoutingRule>
    <RoutingRule>
      <RuleNumber>5</RuleNumber>
      <Condition>
        <KeyPrefixEquals>s3/</KeyPrefixEquals>
        <HttpErrorCodeReturnedEquals>404</HttpErrorCodeReturnedEquals>
      </Condition>
      <Redirect>
        <RedirectType>Mirror</RedirectType>
        <MirrorURL>https://legacy-images.s3.us-west-2.amazonaws.com/</MirrorURL>
        <EnableReplacePrefix>true</EnableReplacePrefix>
        <ReplaceKeyPrefixWith></ReplaceKeyPrefixWith>
        <MirrorAuth>
          <AuthType>S3V4</AuthType>
          <Region>us-west-2</Region>
          <AccessKeyId>TESTAK</AccessKeyId>
          <AccessKeySecret>TESTSK</AccessKeySecret>
        </MirrorAuth>
      </Redirect>
    </RoutingRule>
    <RoutingRule>
      <RuleNumber>6</RuleNumber>
      <Condition>
        <KeyPrefixEquals>abc/</KeyPrefixEquals>
        <HttpErrorCodeReturnedEquals>404</HttpErrorCodeReturnedEquals>
        <IncludeHeader>
          <Key>host</Key>
          <Equals>test.oss-cn-beijing-internal.aliyuncs.com</Equals>
        </IncludeHeader>
      </Condition>
      <Redirect>
        <RedirectType>AliCDN</RedirectType>
        <Protocol>http</Protocol>
        <HostName>example.com</HostName>
        <PassQueryString>false</PassQueryString>
        <ReplaceKeyWith>prefix/${{key}}.suffix</ReplaceKeyWith>
        <HttpRedirectCode>301</HttpRedirectCode>
      </Redirect>
    </RoutingRule>
    <RoutingRule>
      <RuleNumber>7</RuleNumber>
      <Condition>
        <HttpErrorCodeReturnedEquals>404</HttpErrorCodeReturnedEquals>
      </Condition>
      <Redirect>
        <RedirectType>External</RedirectType>
        <Protocol>http</Protocol>
        <HostName>example.com</HostName>
        <PassQueryString>false</PassQueryString>
        <ReplaceKeyWith>prefix/${{key}}</ReplaceKeyWith>
        <HttpRedirectCode>302</HttpRedirectCode>
        <EnableReplacePrefix>false</EnableReplacePrefix>
      </Redirect>
    </RoutingRule>
  </RoutingRules>
</WebsiteConfiguration>
"#
    )
}

const STYLES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<StyleList>
 <Style>
 <Name>thumb</Name>
 <Content>image/resize,m_fill,w_200,h_200</Content>
 <Category>image</Category>
 <CreateTime>Wed, 20 May 2020 12:07:15 GMT</CreateTime>
 <LastModifyTime>Wed, 21 May 2020 12:07:15 GMT</LastModifyTime>
 </Style>
 <Style>
 <Name>small.webp</Name>
 <Content>image/resize,p_50/format,webp</Content>
 <Category>image</Category>
 <CreateTime>Wed, 20 May 2020 12:08:04 GMT</CreateTime>
 <LastModifyTime>Wed, 21 May 2020 12:08:04 GMT</LastModifyTime>
 </Style>
 <Style>
 <Name>preview</Name>
 <Content>doc/preview,print_1</Content>
 <Category>document</Category>
 <CreateTime>Wed, 20 May 2020 12:08:04 GMT</CreateTime>
 <LastModifyTime>Wed, 21 May 2020 12:08:04 GMT</LastModifyTime>
 </Style>
 <Style>
 <Name>cover</Name>
 <Content>video/snapshot,t_1000,f_jpg,w_320,m_fast</Content>
 <Category>video</Category>
 <CreateTime>Wed, 20 May 2020 12:08:04 GMT</CreateTime>
 <LastModifyTime>Wed, 21 May 2020 12:08:04 GMT</LastModifyTime>
 </Style>
 <Style>
 <Name>mislabelled</Name>
 <Content>image/resize,w_10</Content>
 <Category>video</Category>
 <CreateTime>Wed, 20 May 2020 12:08:04 GMT</CreateTime>
 <LastModifyTime>Wed, 21 May 2020 12:08:04 GMT</LastModifyTime>
 </Style>
 <Style>
 <Name>faces</Name>
 <Content>image/faces,w_100</Content>
 <Category>image</Category>
 <CreateTime>Wed, 20 May 2020 12:08:04 GMT</CreateTime>
 <LastModifyTime>Wed, 21 May 2020 12:08:04 GMT</LastModifyTime>
 </Style>
</StyleList>
"#;

fn pixmirror(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pixmirror"))
        .args(args)
        .output()
        .expect("run pixmirror")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_rules_and_styles_serve_as_on_oss() {
    let origin = Origin::start().await;
    let env = Env::new(Backend::Fs, "import").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, s) = (
        dir.path().join("website.xml"),
        dir.path().join("styles.xml"),
    );
    std::fs::write(&w, website(&origin.addr.to_string())).expect("xml");
    std::fs::write(&s, STYLES).expect("xml");
    let out = pixmirror(&["import-oss", "--website", path(&w), "--styles", path(&s)]);
    let (toml, report) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "{report}");
    // Everything not carried over is named, with its rule.
    for line in [
        "rule 1: MirrorSaveOssMeta",
        "rule 2: MirrorSwitchAllErrors",
        "rule 3: MirrorFutureOption: not known to this importer",
        "rule 4: MirrorReturnHeaders",
        "rule 6: IncludeHeader (host)",
        "rule 6: not imported",
        "rule 7: RedirectType External",
        "rule 7: not imported",
        "style preview: category document",
        "style faces: pixmirror refuses `image/faces,w_100`",
        "IndexDocument/ErrorDocument",
        "style mislabelled: category video: the content is not a video process",
        "5 mirror rule(s) and 3 style(s) imported",
    ] {
        assert!(report.contains(line), "`{line}` missing from:\n{report}");
    }
    for mapped in [
        "check_md5 = true",
        "follow_redirects = false",
        "store = false",
        "replace_prefix = \"new/\"",
        "bucket = \"legacy-images\"",
        "region = \"us-west-2\"",
        "access_key_id = \"TESTAK\"",
        "\"small.webp\" = \"image/resize,p_50/format,webp\"",
        "cover = \"video/snapshot,t_1000,f_jpg,w_320,m_fast\"",
    ] {
        assert!(toml.contains(mapped), "`{mapped}` missing from:\n{toml}");
    }
    // The generated TOML is a valid configuration.
    let conf = dir.path().join("pixmirror.toml");
    env.write_config(&conf, &toml);
    let check = pixmirror(&["check-config", "--config", path(&conf)]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let cfg = pixmirror::config::Config::load(&conf, true).expect("load");
    let srv = TestServer::start(cfg).await;
    // Rule 1: prefix and suffix, the query passed, headers passed, removed and set.
    let r = request(
        "GET",
        &srv.url("users/u1.jpg?v=2"),
        &[("x-trace", "t1"), ("cookie", "secret")],
    )
    .await;
    assert_eq!((r.status, r.cache()), (200, "mirrored"), "{:?}", r.body);
    assert_eq!(origin.hits("/render/users/u1.jpg"), 1);
    assert_eq!(origin.query("/render/users/u1.jpg").as_deref(), Some("v=2"));
    let h = origin.headers("/render/users/u1.jpg");
    assert_eq!(h.get("x-trace").map(|v| v.as_bytes()), Some(&b"t1"[..]));
    assert_eq!(h.get("x-api-key").map(|v| v.as_bytes()), Some(&b"k1"[..]));
    assert!(h.get("cookie").is_none(), "Cookie removed");
    assert!(
        env.exists("users/u1.jpg").await,
        "stored under the requested key"
    );
    // users/ without .jpg matches no rule.
    assert_eq!(get(&srv.url("users/u1.gif")).await.status, 404);
    // Rule 2: the primary and the standby fail, the alternate serves.
    let r = get(&srv.url("multi/a.jpg")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(origin.hits("/fail/multi/a.jpg") >= 2);
    assert_eq!(origin.hits("/render/multi/a.jpg"), 1);
    // Rule 3: the prefix replaced at the origin, stored under the asked key.
    assert_eq!(get(&srv.url("old/x.jpg")).await.status, 200);
    assert_eq!(origin.hits("/render/new/x.jpg"), 1);
    assert!(env.exists("old/x.jpg").await);
    // Rule 4: ReplaceKeyWith and MirrorProxyPass: fetched, served, not stored.
    let r = get(&srv.url("p/q.png")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(origin.hits("/img/assets/p/q.png"), 1);
    assert!(!env.exists("p/q.png").await, "proxy pass stores nothing");
    // A style from the style list.
    let k = env.key("sunset.jpg");
    let r = get(&srv.url(&format!("{k}?x-oss-process=style/thumb"))).await;
    assert_eq!((r.status, r.dims()), (200, (200, 200)));
    srv.stop().await;
}

#[test]
fn a_single_get_style_document_imports() {
    let xml = "<Style><Name>imagestyle</Name><Content>image/resize,p_50</Content><Category>image</Category></Style>";
    let imp = pixmirror::oss_import::import(None, Some(xml)).expect("import");
    assert_eq!(imp.styles, 1);
    assert!(
        imp.toml.contains("imagestyle = \"image/resize,p_50\""),
        "{}",
        imp.toml
    );
    assert!(pixmirror::oss_import::import(Some("<nope"), None).is_err());
}
