vcl 4.0;
# Style "kube-httpcache": an instance configured like the VCL template in
# mittwald/kube-httpcache's README (one backend instead of its directors),
# written for cdnpurge's end-to-end tests. Template fields: {{.OriginHost}},
# {{.OriginPort}}; {{.Name}} ({{.Name}}) appears nowhere in responses and no
# token is used: the ACL decides.
#
# Who may invalidate: clients in acl purgers (127.0.0.0/8, ::1, fdcd::/16,
# 10.0.0.0/8). Others get 403 "Not allowed." for PURGE and BAN.
#
# PURGE <path>  return (purge): 200 "Purged", also when nothing was cached.
#               An X-Host header replaces the Host first (kube-httpcache's
#               signaller listens on another name than the site).
# BAN           Cache-Tags: REGEX bans objects whose Cache-Tags header matches;
#               X-Url: URL bans the object whose URL is EXACTLY that string
#               (==, not a regular expression: X-Url: ^/assets/ bans nothing).
#               Both answer 200 "Ban added <Host>", also when the expression
#               is invalid (ban() reports no error); with neither header
#               403 "Cache-Tags or X-Url header missing.".
# Tags          none beyond Cache-Tags bans.
#
# Evidence: no cache header at all. X-Varnish and Age are all there is:
#   hit    X-Varnish: two ids (this request's and the object's), Age counts up
#   miss   X-Varnish: one id, Age: 0
#   stale  like a hit (two ids), Age beyond the object's max-age
#   pass   like a miss (one id, Age: 0)
#   synth  one id, no Age; invalidation answers and errors

import std;

backend default {
    .host = "{{.OriginHost}}";
    .port = "{{.OriginPort}}";
}

acl purgers {
    "127.0.0.0"/8;
    "::1";
    "fdcd::"/16;
    "10.0.0.0"/8;
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Not allowed."));
        }
        if (req.http.X-Host) {
            set req.http.host = req.http.X-Host;
        }
        return (purge);
    }

    if (req.method == "BAN") {
        if (client.ip !~ purgers) {
            return (synth(403, "Not allowed."));
        }
        if (req.http.Cache-Tags) {
            ban("obj.http.Cache-Tags ~ " + req.http.Cache-Tags);
            return (synth(200, "Ban added " + req.http.host));
        }
        if (req.http.X-Url) {
            ban("obj.http.X-Url == " + req.http.X-Url);
            return (synth(200, "Ban added " + req.http.host));
        }
        return (synth(403, "Cache-Tags or X-Url header missing."));
    }
}

sub vcl_backend_response {
    # What an X-Url ban compares, stored with the object.
    set beresp.http.X-Url = bereq.url;
}

sub vcl_deliver {
    unset resp.http.X-Url;
}
