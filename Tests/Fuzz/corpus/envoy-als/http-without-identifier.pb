Ù
ä
Ö*‚ü°ÿÄçª‘j
	127.0.0.1¯Fr
	127.0.0.1∞πz2outbound|9080|v2|reviews.default.svc.cluster.localÇHÄ∫†ó”“b6f1c9b2àdreviews:9080*
/reviews/0`jF
traceparent700-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174-01"
»ß*
grpc-status0

*‚ü°ÿà
Jno-start-time
C
*‚ü°ÿ"j 
x-b3-traceid5AF7183FB1D4CF5F""
grpc-status14