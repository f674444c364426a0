vcl 4.0;
# Style "magento2": an instance configured the way Magento 2's own VCL for
# Varnish 7 works (app/code/Magento/PageCache/etc/varnish7.vcl, as Magento
# generates it), written for cdnpurge's end-to-end tests from its documented
# behaviour. Template fields: {{.OriginHost}}, {{.OriginPort}}, {{.Grace}}
# (the grace Magento's admin sets, seconds); {{.Name}} ({{.Name}}) appears
# nowhere in responses and no token is used: the ACL decides.
#
# PURGE <any path>  from acl purge (127.0.0.0/8, ::1, fdcd::/16, 10.0.0.0/8)
#               does not purge a URL: it bans by tag. It needs
#               X-Magento-Tags-Pattern: REGEX (over the object's
#               X-Magento-Tags, the comma-separated tags Magento sends, e.g.
#               ((^|,)cat_p_42(,|$))) and/or X-Pool: REGEX (over X-Pool), and
#               answers 200 "Purged", also when nothing matched. Without
#               either header: 400 "X-Magento-Tags-Pattern or X-Pool header
#               required". From elsewhere: 405 "Method not allowed".
# BAN, tags     other methods than GET and HEAD are passed (PUT, POST...) or
#               piped (anything else: BAN, PURGEKEYS) to Magento, which
#               answers them (the test origin: 200).
#
# Evidence: X-Varnish, Age and Via are removed from every response (Age is
# kept only when the origin asks with X-Magento-Debug). What is left:
#   hit    X-Magento-Cache-Debug: HIT, Grace: none
#   stale  X-Magento-Cache-Debug: HIT, Grace: normal (healthy server)
#   miss   X-Magento-Cache-Debug: MISS
#   pass   X-Magento-Cache-Debug: UNCACHEABLE (also hit-for-pass)
#   synth  nothing: purge answers and errors skip vcl_deliver

import std;

backend default {
    .host = "{{.OriginHost}}";
    .port = "{{.OriginPort}}";
    .first_byte_timeout = 600s;
}

acl purge {
    "127.0.0.0"/8;
    "::1";
    "fdcd::"/16;
    "10.0.0.0"/8;
}

sub vcl_recv {
    if (req.restarts > 0) {
        set req.hash_always_miss = true;
    }

    if (req.method == "PURGE") {
        if (client.ip !~ purge) {
            return (synth(405, "Method not allowed"));
        }
        # Bans by tag (and by pool, for deploy tools): never one URL.
        if (!req.http.X-Magento-Tags-Pattern && !req.http.X-Pool) {
            return (synth(400, "X-Magento-Tags-Pattern or X-Pool header required"));
        }
        if (req.http.X-Magento-Tags-Pattern) {
            ban("obj.http.X-Magento-Tags ~ " + req.http.X-Magento-Tags-Pattern);
        }
        if (req.http.X-Pool) {
            ban("obj.http.X-Pool ~ " + req.http.X-Pool);
        }
        return (synth(200, "Purged"));
    }

    if (req.method != "GET" && req.method != "HEAD" && req.method != "PUT" &&
        req.method != "POST" && req.method != "PATCH" && req.method != "TRACE" &&
        req.method != "OPTIONS" && req.method != "DELETE") {
        return (pipe);
    }
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }

    # Whether a hit was served in grace, for the Grace header.
    set req.http.grace = "none";
    return (hash);
}

sub vcl_hit {
    if (obj.ttl >= 0s) {
        return (deliver);
    }
    if (obj.ttl + obj.grace > 0s) {
        set req.http.grace = "normal (healthy server)";
        return (deliver);
    }
    return (restart);
}

sub vcl_backend_response {
    # Errors are not kept: a short hit-for-miss instead.
    if (beresp.status == 403 || beresp.status == 404 || beresp.status >= 500) {
        set beresp.uncacheable = true;
        set beresp.ttl = 120s;
        return (deliver);
    }
    set beresp.grace = {{.Grace}}s;
    if (beresp.http.Cache-Control ~ "private") {
        set beresp.uncacheable = true;
        set beresp.ttl = 86400s;
        return (deliver);
    }
    if (beresp.ttl <= 0s || beresp.http.Cache-Control ~ "no-cache|no-store") {
        set beresp.ttl = 120s;
        set beresp.uncacheable = true;
    }
    return (deliver);
}

sub vcl_deliver {
    if (obj.uncacheable) {
        set resp.http.X-Magento-Cache-Debug = "UNCACHEABLE";
    } else if (obj.hits) {
        set resp.http.X-Magento-Cache-Debug = "HIT";
        set resp.http.Grace = req.http.grace;
    } else {
        set resp.http.X-Magento-Cache-Debug = "MISS";
    }
    if (!resp.http.X-Magento-Debug) {
        unset resp.http.Age;
    }
    unset resp.http.X-Magento-Debug;
    unset resp.http.X-Magento-Tags;
    unset resp.http.X-Varnish;
    unset resp.http.Via;
}
