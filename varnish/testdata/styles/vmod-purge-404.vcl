vcl 4.1;
# Style "vmod-purge-404": the example of vmod purge's manual, written for
# cdnpurge's end-to-end tests: a PURGE looks the object up and purge.hard()
# drops it from vcl_hit or vcl_miss, so the answer says whether anything was
# cached. Template fields: {{.OriginHost}}, {{.OriginPort}}; {{.Name}}
# ({{.Name}}) appears nowhere in responses and no token is used: the ACL
# decides.
#
# PURGE <path>  from acl purge_acl (127.0.0.0/8, ::1, fdcd::/16, 10.0.0.0/8):
#               200 "OK" with a `purged: N` header (N >= 1, every variant)
#               when the URL was cached; 404 "Not Found" when nothing was.
#               From anywhere else: 405 "Method Not Allowed".
#               Synthetic purge answers have an empty body.
# BAN, tags     not handled: the built-in VCL pipes methods it does not know
#               (BAN, PURGEKEYS) to the origin, which answers them.
#
# Evidence: no cache header at all. X-Varnish and Age are all there is:
#   hit    X-Varnish: two ids (this request's and the object's), Age counts up
#   miss   X-Varnish: one id, Age: 0
#   stale  like a hit (two ids), Age beyond the object's max-age
#   pass   like a miss (one id, Age: 0)
#   synth  one id, no Age

import purge;

backend default {
    .host = "{{.OriginHost}}";
    .port = "{{.OriginPort}}";
}

acl purge_acl {
    "127.0.0.0"/8;
    "::1";
    "fdcd::"/16;
    "10.0.0.0"/8;
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purge_acl) {
            return (synth(405));
        }
        # Look it up: vcl_hit or vcl_miss purges every variant.
        return (hash);
    }
}

sub purge_and_answer {
    set req.http.purged = purge.hard();
    if (req.http.purged == "0") {
        return (synth(404));
    }
    return (synth(200));
}

sub vcl_hit {
    if (req.method == "PURGE") {
        call purge_and_answer;
    }
}

sub vcl_miss {
    if (req.method == "PURGE") {
        call purge_and_answer;
    }
}

sub vcl_synth {
    if (req.method == "PURGE") {
        if (req.http.purged) {
            set resp.http.purged = req.http.purged;
        }
        return (deliver);
    }
}
