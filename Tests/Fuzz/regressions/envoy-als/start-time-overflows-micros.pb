ş

Š*„¦ì¥á‚´ıµ€»Ôj
	127.0.0.1øFr
	127.0.0.1°¹z2outbound|9080|v2|reviews.default.svc.cluster.local‚H€º —ÓÒb6f1c9b2ˆdreviews:9080*
/reviews/0`jF
traceparent700-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174-01"
È§*
grpc-status0

*âŸ¡Øˆ
Jno-start-time
H
*€€€€øÿÿÿÿ"j 
x-b3-traceid5AF7183FB1D4CF5F""
grpc-status14