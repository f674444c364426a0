vcl 4.1;
# Style "fos": an instance configured the way FOSHttpCache documents for
# Varnish (its purge, ban, xkey tag and debug pieces, debugging on), written
# for cdnpurge's end-to-end tests. Needs vmod xkey. Template fields:
# {{.OriginHost}}, {{.OriginPort}}; {{.Name}} ({{.Name}}) appears nowhere in
# responses and no token is used: the ACL decides.
#
# Who may invalidate: clients in acl invalidators (127.0.0.0/8, ::1,
# fdcd::/16, 10.0.0.0/8). Others get 405 "Not allowed" for PURGE, BAN and
# PURGEKEYS.
#
# PURGE <path>  return (purge): 200 "Purged", also when nothing was cached.
#               A PURGE carrying xkey-purge is still a purge of that one URL:
#               FOSHttpCache takes tags on the PURGEKEYS method.
# BAN           X-Host, X-Url, X-Content-Type: regular expressions over the
#               object's X-Host, X-Url (stored from the backend request) and
#               Content-Type. All three are needed: FOSHttpCache's client
#               always sends them (".*" for the ones it does not restrict).
#               200 "Banned". The ban is built with ban(), which reports no
#               error: with a header missing the expression does not parse
#               (Varnish logs VCL_Error "ban(): Expected second operand."),
#               nothing is banned and the answer is still 200 "Banned"; an
#               invalid regex likewise.
# PURGEKEYS     xkey-purge: TAG... drops and xkey-softpurge: TAG... expires
#               every object whose origin response carried one of the tags in
#               an `xkey` header. 200 "Purged N objects, expired M objects";
#               400 "Neither xkey-purge nor xkey-softpurge set" with neither.
#
# Evidence, on every response that goes through vcl_deliver (debugging on):
#   hit    X-Cache: HIT   (X-Varnish has two ids; Age counts up)
#   miss   X-Cache: MISS  (X-Varnish has one id; Age: 0)
#   stale  X-Cache: HIT   (a hit in grace looks like any other hit)
#   pass   X-Cache: MISS
#   synth  no X-Cache: purge, ban and error answers skip vcl_deliver
# As with FOSHttpCache's debugging on, the X-Host, X-Url and xkey headers of
# the object are delivered too.

import xkey;

backend default {
    .host = "{{.OriginHost}}";
    .port = "{{.OriginPort}}";
}

acl invalidators {
    "127.0.0.0"/8;
    "::1";
    "fdcd::"/16;
    "10.0.0.0"/8;
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ invalidators) {
            return (synth(405, "Not allowed"));
        }
        return (purge);
    }

    if (req.method == "BAN") {
        if (client.ip !~ invalidators) {
            return (synth(405, "Not allowed"));
        }
        # Only obj.* on purpose: the ban lurker can evaluate it.
        ban("obj.http.X-Host ~ " + req.http.X-Host +
            " && obj.http.X-Url ~ " + req.http.X-Url +
            " && obj.http.content-type ~ " + req.http.X-Content-Type);
        return (synth(200, "Banned"));
    }

    if (req.method == "PURGEKEYS") {
        if (client.ip !~ invalidators) {
            return (synth(405, "Not allowed"));
        }
        if (!req.http.xkey-purge && !req.http.xkey-softpurge) {
            return (synth(400, "Neither xkey-purge nor xkey-softpurge set"));
        }
        set req.http.x-purged = "0";
        set req.http.x-expired = "0";
        if (req.http.xkey-purge) {
            set req.http.x-purged = xkey.purge(req.http.xkey-purge);
        }
        if (req.http.xkey-softpurge) {
            set req.http.x-expired = xkey.softpurge(req.http.xkey-softpurge);
        }
        return (synth(200, "Purged " + req.http.x-purged + " objects, expired " +
            req.http.x-expired + " objects"));
    }
}

sub vcl_backend_response {
    # What a BAN matches, stored with the object.
    set beresp.http.X-Url = bereq.url;
    set beresp.http.X-Host = bereq.http.host;
}

sub vcl_deliver {
    # Debugging on: one id in X-Varnish is a miss, two a hit.
    if (resp.http.X-Varnish ~ " ") {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
