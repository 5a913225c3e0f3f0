
í
{
Dsidecar~10.0.0.9~mongodb-v1-7d8f9c6b4d-x2k9p.db~db.svc.cluster.local3

	NAMESPACEdb

LABELS*

app	mongodbtcp_envoy_accesslogõ
æ
¥
	::1¿∏
10.0.0.9â”"_"+
)
'spiffe://cluster.local/ns/db/sa/mongodb*0
.
,spiffe://cluster.local/ns/default/sa/ratings*‚ü°ÿÄçª‘zinbound|27017||Ç8‡∫¿ñ±àxÄ 
	
*ÿ
M
K*‚ü°ÿr
10.0.0.9"mongoz,outbound|27017||mongodb.db.svc.cluster.local